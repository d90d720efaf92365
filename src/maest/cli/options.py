"""Options shared by several commands, their validation, and the CLI's error helpers.

One spelling per concept across commands: ``--model``, ``--device``, ``--batch-size``,
``--decode-workers`` (processes decoding audio into mel), ``--probe-workers`` (processes training
probes), ``--tokens`` (one token syntax, :func:`maest.model.parse_tokens`). Nothing here imports
torch: ``maest --help`` stays fast.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

DEFAULT_MODEL = "discogs-maest-30s-pw-129e"

EVAL_DATASETS = ("mtg-jamendo-genre, mtg-jamendo-instrument, mtg-jamendo-moodtheme, mtg-jamendo-top50tags, mtt, msd, "
                 "msd-cals")
EVAL_METADATA = ("Split files: MTG-Jamendo's data/splits (or split-0/) folder; MTT folder of train/validation/test.tsv + "
                 "tags.txt, annotations_final.csv, or folder with binary.npy + tags.npy + split arrays; MSD folder of "
                 "*.cP pickles + 50tagList.txt + 7digital maps; MSD-CALS folder of {train,valid,test}_ids.npy + "
                 "_binaries.npy.")
SEGMENT_RULES = ("maest", "original")  # maest.segments.SEGMENT_RULES, spelled here so --help needs no torch
TOKENS_HELP = ("Tokens to stack, in order: names cls,dist,avg or their letters (cda, c,d,a); "
               "all spellings give the same stack.")


# --- errors ---------------------------------------------------------------------------------------
def fail(message: str) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with status 1."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def require(extra: str, *modules: str) -> None:
    """Fail with the install command when an optional dependency of a command is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        fail(f"this command needs {', '.join(missing)}: pip install 'maest[{extra}]'")


# --- parsing --------------------------------------------------------------------------------------
def split_list(text: str | None, convert=str) -> list:
    """'a,b, c' -> ['a', 'b', 'c'] (converted); '' or None -> []."""
    return [convert(part.strip()) for part in (text or "").split(",") if part.strip()]


def split_token_stacks(text: str) -> list[str]:
    """Several token stacks: ``'cls,dist;avg'`` (stacks split by ``;``) or ``'c,d,cd'`` (letter stacks by ``,``).

    Without a ``;`` every comma separates stacks (the original syntax of ``experiment blocks``), so
    ``cls,dist`` there means two stacks; with a ``;`` each stack is in the one token syntax.
    """
    separator = ";" if ";" in text else ","
    return [stack.strip() for stack in text.split(separator) if stack.strip()]


def _check_tokens(value: str | None) -> str | None:
    """Refuse a bad token spec while parsing, before any model or file is touched."""
    if value is not None:
        from maest.model import parse_tokens

        try:
            parse_tokens(value)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    return value


def _check_segments(value: str | None) -> str | None:
    if value is not None and value not in SEGMENT_RULES:
        raise typer.BadParameter(f"must be one of {', '.join(SEGMENT_RULES)}, got {value!r}")
    return value


def _check_token_stacks(value: str) -> str:
    stacks = split_token_stacks(value)
    if not stacks:
        raise typer.BadParameter("give at least one token stack, e.g. 'cda' or 'c,d,a,cd'")
    for stack in stacks:
        _check_tokens(stack)
    return value


# --- renamed options ------------------------------------------------------------------------------
def _deprecated(new_flag: str):
    def note(value: int | None) -> int | None:
        if value is not None:
            typer.echo(f"note: --workers is deprecated here; use {new_flag} (same meaning)", err=True)
        return value

    return note


def renamed_workers(ctx: typer.Context, old: int | None, new: int | None, new_param: str) -> int | None:
    """The value of the old ``--workers`` when it was given (and its new name was not), else the new one."""
    if old is None:
        return new
    source = ctx.get_parameter_source(new_param)
    if source is not None and source.name == "COMMANDLINE":
        fail(f"--workers is the old name of --{new_param.replace('_', '-')}: give only the new one")
    return old


# --- option types ---------------------------------------------------------------------------------
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Registry name, Hugging Face id or local checkpoint path.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Segments per model call, across files.")]
DecodeWorkersOpt = Annotated[int, typer.Option(
    "--decode-workers", min=0, help="Processes decoding audio into mel while the model runs (0: decode in this process).")]
OldDecodeWorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", min=0, hidden=True, callback=_deprecated("--decode-workers"), help="Deprecated: --decode-workers.")]
ProbeWorkersOpt = Annotated[Optional[int], typer.Option(
    "--probe-workers", min=0, help="Processes training probes in parallel (default or 0: all cores).")]
OldProbeWorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", min=0, hidden=True, callback=_deprecated("--probe-workers"), help="Deprecated: --probe-workers.")]
TokensOpt = Annotated[Optional[str], typer.Option("--tokens", callback=_check_tokens, help=TOKENS_HELP)]
TokenStacksOpt = Annotated[str, typer.Option(
    "--tokens", callback=_check_token_stacks,
    help="Token stacks to compare: letter stacks split by commas (c,d,a,cd,ca,da,cda), or any token stacks "
         "split by ';' (quote it: 'cls,dist;avg;cda').")]
BlocksOpt = Annotated[Optional[int], typer.Option(
    "--blocks", help="Blocks to run, 1-based: 7 = the paper's 'block 7' (original transformer_block=6).")]
def _check_blocks(value: str | int) -> str | int:
    """``auto`` or a block number (range checked against the model once it is loaded)."""
    from maest.blocks import BlocksError, parse_blocks

    try:
        return parse_blocks(str(value))
    except BlocksError as error:
        raise typer.BadParameter(str(error)) from None


EmbedBlocksOpt = Annotated[str, typer.Option(
    "--blocks", callback=_check_blocks, metavar="auto|N",
    help="Blocks to run, 1-based: 7 = the paper's 'block 7' (original transformer_block=6). auto: 7, or the last "
         "block of a model with fewer.")]
PatchoutTimeOpt = Annotated[int, typer.Option(
    "--patchout-time", help="Inference patchout: keep one time column of the patch grid out of every T (1: all).")]
PatchoutFreqOpt = Annotated[str, typer.Option(
    "--patchout-freq", help="Inference patchout: frequency rows of the patch grid to drop, e.g. 0,7,8 (rows 0..8).")]
OverlapOpt = Annotated[float, typer.Option(
    "--overlap", help="Overlap of consecutive segments, in [0, 1) (the paper: 0.5); track outputs average over segments.")]
CropOpt = Annotated[Optional[str], typer.Option(
    "--crop", help="'center': one segment from the centre of each track (the paper's training input) instead of all.")]
SegmentsOpt = Annotated[Optional[str], typer.Option(
    "--segments", callback=_check_segments, metavar="[maest|original]",
    help="Segment rule. 'maest': half-overlapping segments covering every frame (a last one ends on the last "
         "frame), short tracks at their own length. 'original': the original code's rule, as the paper's numbers "
         "were made (segments at multiples of half a segment while a 10 % margin allows, partial and short ones "
         "zero-padded to full length, centred). Default: maest for embed/tag; the protocol's (original) for eval "
         "and the experiments.")]
ExtensionsOpt = Annotated[Optional[str], typer.Option(
    "--ext", help="Extensions to take from folders, e.g. mp3,wav (default: every format maest decodes).")]
PrecisionOpt = Annotated[Optional[str], typer.Option(
    "--precision", help="auto, fp32, or bf16 / fp16 (autocast). auto (default): bf16 where the device computes it "
                        "natively (GPUs since Ampere, CPUs with AMX or AVX512-BF16), fp16 on older GPUs, else fp32.")]
RESAMPLERS = ("essentia", "soxr")  # maest.spec.RESAMPLERS, spelled here so --help needs no torch


def _check_resampler(value: str | None) -> str | None:
    if value is not None and value not in RESAMPLERS:
        raise typer.BadParameter(f"must be one of {', '.join(RESAMPLERS)}, got {value!r}")
    return value


ResamplerOpt = Annotated[Optional[str], typer.Option(
    "--resampler", callback=_check_resampler, metavar="[essentia|soxr]",
    help="Resampler for audio not at 16 kHz: essentia (libsamplerate sinc_medium, the published models' training "
         "input; default) or soxr (high quality). Part of the embedding spec: outputs of the two never mix.")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="Where tracks are computed: local (decode workers and the model in this process) or ray "
                     "(a Ray cluster; pip install 'maest[ray]').")]
RayAddressOpt = Annotated[Optional[str], typer.Option(
    "--ray-address", help="With --engine ray: 'auto' (the cluster `ray start` made) or HOST:PORT, connected to as given "
                          "(default: a new local cluster on 127.0.0.1 only, stopped at the end).")]
ConcurrencyOpt = Annotated[int, typer.Option(
    "--concurrency", min=1, help="With --engine ray: model actors (one GPU each when the cluster has GPUs, else a node's CPUs shared "
                        "by the actors, as torch threads).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]

# Evaluation and the experiments.
DatasetArg = Annotated[str, typer.Argument(help=f"Dataset: {EVAL_DATASETS}.")]
MetadataOpt = Annotated[Path, typer.Option("--metadata", help=EVAL_METADATA)]
AudioRootOpt = Annotated[Path, typer.Option("--audio-root", help="Folder the split files' audio paths are relative to.")]
ProtocolOpt = Annotated[str, typer.Option(
    "--protocol", help="'paper' (Adam, 30 epochs, cls+dist+avg) or 'original-repo' (AdamW, lr 1e-4, 60 epochs, cls token).")]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Override the protocol's probe epochs.")]
MaxLrOpt = Annotated[Optional[float], typer.Option("--max-lr", help="Override the protocol's maximum learning rate.")]
ProbeBatchOpt = Annotated[Optional[int], typer.Option("--probe-batch", min=1, help="Override the protocol's probe batch size.")]
DropoutOpt = Annotated[Optional[float], typer.Option("--dropout", help="Override the protocol's probe dropout.")]
WarmupOpt = Annotated[Optional[int], typer.Option(
    "--warmup-epochs", help="Override the probe's warm-up epochs (10; keep below --epochs).")]
LowQualityOpt = Annotated[bool, typer.Option("--low-quality", help="MTG-Jamendo: read the .low.mp3 audio release.")]
AllowMissingOpt = Annotated[bool, typer.Option(
    "--allow-missing", help="Run without tracks whose audio is missing (counts are reported) instead of stopping.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of probe initialisation, shuffling and dropout.")]
