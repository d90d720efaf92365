"""``--engine`` and its options on every command that computes tracks (embed, tag, head fit, eval).

The choices come from :data:`maest.extraction.engines.ENGINES`; each command-line option maps to the
engine keyword of the same meaning, and an option the chosen engine does not take is refused when
it was given on the command line (its default is simply not passed).
"""

from __future__ import annotations

from typing import Any

import typer

from maest.cli.options import fail

CLI_TO_ENGINE = {"decode_workers": "decode_workers", "ray_address": "address", "concurrency": "concurrency"}
"""Command-line parameter -> engine keyword."""


def engine_for(ctx: typer.Context, name: str, **values: Any):
    """The engine ``name`` built from the command's engine options (``values`` by CLI parameter name);
    use it as a context manager so a cluster it starts stops with the command."""
    from maest.extraction.engines import ENGINES, EngineError, engine_options, make_engine

    if name not in ENGINES:
        fail(f"--engine must be one of {', '.join(ENGINES)}, got {name!r}")
    accepted = engine_options(name)
    options = {}
    for parameter, value in values.items():
        keyword = CLI_TO_ENGINE[parameter]
        if keyword in accepted:
            options[keyword] = value
        else:
            source = ctx.get_parameter_source(parameter)
            if source is not None and source.name == "COMMANDLINE":
                fail(f"--{parameter.replace('_', '-')} does not apply to --engine {name}")
    try:
        return make_engine(name, **options)
    except (EngineError, ValueError) as error:
        fail(str(error))
