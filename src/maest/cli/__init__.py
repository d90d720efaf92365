"""Command line: thin wrappers that map flags onto library calls and show progress.

One module per command group (``inference``, ``data``, ``train``, ``evaluate``, ``weights``); the
options they share are in ``options``. Command modules import the library only inside commands, so
``maest --help`` does not import torch.
"""

from __future__ import annotations

from typing import Annotated

import typer

from maest.cli import app as app_commands
from maest.cli import collection
from maest.cli import data, evaluate, inference, train, weights
from maest.cli import write_tags

app = typer.Typer(
    name="maest",
    help="MAEST music audio embeddings and Discogs style tags: extract, tag, train and evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        import maest

        typer.echo(f"maest {maest.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version, metavar="", help="Print the version and exit.")] = False,
) -> None:
    """MAEST music audio embeddings and Discogs style tags: extract, tag, train and evaluate."""


# Help lists the commands in this order.
app.command("discogs-labels")(data.discogs_labels_command)
app.command("prepare")(data.prepare_command)
app.command("embed")(inference.embed_command)
app.command("tag")(inference.tag_command)
app.command("untag")(write_tags.untag_command)
app.command("eval")(evaluate.eval_command)
app.command("train")(train.train_command)
app.command("demo-data")(data.demo_data_command)
app.command("export")(weights.export_command)
app.command("models")(weights.models_command)
app.command("similar")(collection.similar_command)
app.command("map")(collection.map_command)
app.command("serve")(app_commands.serve_command)
app.add_typer(collection.head_app, name="head")
app.add_typer(collection.index_app, name="index")
app.add_typer(evaluate.experiment_app, name="experiment")


def main() -> None:
    """Console entry point (``maest``): SIGINT and SIGTERM clean up and exit 130 / 143 (:mod:`maest.cli.signals`)."""
    from maest.cli.signals import run_with_signal_exits

    run_with_signal_exits(app)
