"""Weights: `maest export` (convert between formats) and `maest models` (the published models)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.options import TokensOpt, fail


def export_command(
    model: Annotated[str, typer.Argument(help="Registry name, Hugging Face id or local checkpoint (any supported format).")],
    output: Annotated[Path, typer.Argument(
        help="Where to write: a folder (native, hf) or a file (official .pt, .onnx, native .safetensors).")],
    to: Annotated[str, typer.Option(
        "--to", help="native (maest safetensors + config.json), hf (transformers AST folder), "
                     "official (the original MAEST code's state dict), onnx.")] = "native",
    graph: Annotated[str, typer.Option(
        "--graph", help="ONNX only: 'embedding' (mel -> pooled tokens) or 'logits'.")] = "embedding",
    blocks: Annotated[Optional[int], typer.Option(
        "--blocks", help="ONNX embedding graph: blocks to run (default: all; paper: 7).")] = None,
    tokens: TokensOpt = "cls,dist,avg",
    swa: Annotated[bool, typer.Option(
        "--swa/--no-swa", help="Lightning checkpoints: take the SWA copy when there is one.")] = True,
) -> None:
    """Convert MAEST weights to another format (maest native, Hugging Face AST, original MAEST, ONNX)."""
    from maest import checkpoints
    from maest.checkpoints.export import EXPORT_TARGETS
    from maest.family import family_of
    from maest.model import parse_tokens

    if to not in EXPORT_TARGETS:
        fail(f"--to must be native, hf, official or onnx, got {to!r}")
    try:
        net = checkpoints.load_checkpoint(model, swa=swa)
        if not family_of(net).converts:
            fail(f"{model} is not a MAEST transformer; only MAEST weights convert to other formats")
        onnx_options = {"graph": graph, "blocks": blocks, "tokens": parse_tokens(tokens)} if to == "onnx" else {}
        written = checkpoints.export(net, output, to=to, **onnx_options)
    except (OSError, ValueError, RuntimeError) as error:  # CheckpointError is a RuntimeError
        fail(f"{type(error).__name__}: {error}")
    typer.echo(f"wrote {written}")


def models_command() -> None:
    """List the published models: segment length, classes, initialisation, and whether the weights are cached."""
    import maest
    from maest.registry import cache_dir

    header = ("name", "segment", "classes", "init", "cached")
    rows = [(m.name, f"{m.segment_seconds} s", str(m.num_classes), m.init, "yes" if m.cached else "no")
            for m in maest.list_models()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    typer.echo(f"weights are looked for in {cache_dir()}/<name> (set MAEST_HOME to change the folder)")
