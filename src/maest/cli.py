"""Command line: thin wrappers that map flags onto library calls and show progress."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="maest",
    help="MAEST music audio embeddings and Discogs style tags: extract, tag, train and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _root() -> None:
    """MAEST music audio embeddings and Discogs style tags: extract, tag, train and evaluate."""


# Commands are grouped by concern below; each calls one library function.


def main() -> None:
    app()


if __name__ == "__main__":
    main()
