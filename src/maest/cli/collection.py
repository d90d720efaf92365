"""Answers over a collection: `maest head fit` (own-label taggers), `maest index build|add`,
`maest similar` (similarity search) and `maest map` (a 2-D picture of a collection)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maest.cli.tsv import tsv_field
from maest.cli.groups import EngineOptions, expand_groups
from maest.cli.options import (DEFAULT_MODEL, BatchSizeOpt, DecodeWorkersOpt, DeviceOpt, EmbedBlocksOpt,
                               PatchoutFreqOpt, PatchoutTimeOpt, PrecisionOpt, ProgressOpt, ResamplerOpt, TokensOpt,
                               fail, require, split_list)

head_app = typer.Typer(help="Own-label heads: fit a small tagger for your labels on MAEST embeddings.",
                       no_args_is_help=True)
index_app = typer.Typer(help="Similarity index over an `maest embed` output (npy tree or parquet table).",
                        no_args_is_help=True)
WaitOpt = Annotated[float, typer.Option(
    "--wait", min=0.0, help="Seconds to wait while another process writes the index, then stop with 'index busy'.")]


@head_app.command("fit")
@expand_groups
def head_fit_command(
    ctx: typer.Context,
    labels: Annotated[Path, typer.Argument(
        help="TSV/CSV of 'path<TAB>tag1,tag2[<TAB>split]' (multi-label), or a folder tree ROOT/<class>/<files> "
             "(single-label).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Head folder: head.safetensors + head.json.")],
    audio_root: Annotated[Optional[Path], typer.Option(
        "--audio-root", help="Folder the label file's paths are relative to (default: the label file's folder).")] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Registry name, Hugging Face id or local checkpoint path.")] = DEFAULT_MODEL,
    blocks: EmbedBlocksOpt = "auto",
    tokens: TokensOpt = None,
    patchout_time: PatchoutTimeOpt = 1,
    patchout_freq: PatchoutFreqOpt = "",
    validation: Annotated[float, typer.Option(
        "--validation", min=0.0, max=0.9, help="Held-out fraction for validation and thresholds (unless the "
                                               "labels have a split column).")] = 0.2,
    classifier: Annotated[str, typer.Option(
        "--classifier", help="auto (logistic regression below 400 training tracks, else the paper's MLP), "
                             "mlp or logistic.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and the classifier.")] = 0,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="Embedding cache (default: OUTPUT/embeddings); a rerun embeds nothing again.")] = None,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 8,
    decode_workers: DecodeWorkersOpt = 2,
    progress: ProgressOpt = True,
    precision: PrecisionOpt = None,
    resampler: ResamplerOpt = None,
    compute: EngineOptions = EngineOptions(),
) -> None:
    """Fit a head on your labels: embeds each track once (cached), trains, picks thresholds, reports validation scores."""
    require("eval", "sklearn")
    from maest.heads import fit_head
    from maest.model import parse_tokens

    runner = compute.build(ctx, decode_workers)
    try:
        report = fit_head(
            labels, output, audio_root=audio_root, model=model, blocks=blocks,
            tokens=parse_tokens(tokens) if tokens else ("cls", "dist", "avg"), patchout_time=patchout_time,
            patchout_freq=split_list(patchout_freq, int), validation=validation, seed=seed, classifier=classifier,
            device=device, batch_size=batch_size, decode_workers=decode_workers, cache_dir=cache_dir,
            progress=progress, precision=precision, resampler=resampler, engine=runner,
        )
    except (OSError, ValueError, RuntimeError) as error:  # HeadDataError/HeadMismatchError are ValueErrors
        fail(f"{type(error).__name__}: {error}")
    finally:
        runner.close()
    typer.echo(report.summary())


@index_app.command("build")
def index_build_command(
    embeddings: Annotated[Path, typer.Argument(
        help="An `maest embed` output folder (npy/npz tree or embeddings.parquet), or a parquet table.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Index folder to create.")],
    kind: Annotated[str, typer.Option(
        "--kind", help="auto (exact search up to ~20,000 tracks of 2304 dims, HNSW beyond), exact or "
                       "approximate.")] = "auto",
    pca_dims: Annotated[Optional[int], typer.Option(
        "--pca-dims", min=1, help="Project to this many dims (fitted on the collection) to bound memory.")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="float32, or float16 to halve memory.")] = "float32",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing index in OUTPUT.")] = False,
    wait: WaitOpt = 300.0,
) -> None:
    """Index a collection's embeddings for cosine similarity search."""
    require("index", "faiss")
    from maest.index import build_index

    try:
        info = build_index(embeddings, output, kind=kind, pca_dims=pca_dims, dtype=dtype, overwrite=overwrite,
                           wait=wait, on_wait=_tell)
    except (OSError, ValueError, ImportError) as error:  # SimilarityIndexError is a ValueError
        fail(f"{type(error).__name__}: {error}")
    typer.echo(info.summary())


@index_app.command("add")
def index_add_command(
    index: Annotated[Path, typer.Argument(help="Index folder (maest index build).")],
    embeddings: Annotated[Path, typer.Argument(help="An `maest embed` output with the same settings.")],
    assume_spec: Annotated[bool, typer.Option(
        "--assume-spec", help="Add even when EMBEDDINGS or the index records no embedding settings (no "
                              "maest-embed.json): you vouch that both come from the same model and settings.")] = False,
    wait: WaitOpt = 300.0,
) -> None:
    """Add the tracks of EMBEDDINGS that the index does not hold yet (no rebuild); removed tracks are reported."""
    require("index", "faiss")
    from maest.index import add_to_index

    try:
        report = add_to_index(index, embeddings, assume_spec=assume_spec, wait=wait, on_wait=_tell)
    except (OSError, ValueError, ImportError) as error:
        fail(f"{type(error).__name__}: {error}")
    typer.echo(report.summary())
    for key in report.missing[:10]:
        typer.echo(f"  no longer in the embeddings: {key}", err=True)


def _tell(message: str) -> None:
    typer.echo(message, err=True)


def similar_command(
    query: Annotated[str, typer.Argument(
        help="A track key in the index (as `maest embed` named it), or an audio file (embedded like the index).")],
    index: Annotated[Path, typer.Option("--index", help="Index folder (maest index build).")],
    k: Annotated[int, typer.Option("-k", min=1, help="Number of similar tracks.")] = 10,
    model: Annotated[Optional[str], typer.Option(
        "--model", "-m", help="Model for an audio query (default: the one the index's embeddings were made with).")] = None,
    device: DeviceOpt = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="table or tsv; both key then similarity (in tsv a tab, newline or backslash in a key "
                         "is written \\t, \\n, \\\\).")] = "table",
) -> None:
    """Print the tracks most similar to QUERY (cosine similarity, most similar first)."""
    require("index", "faiss")
    from maest.index import similar

    if output_format not in ("table", "tsv"):
        fail(f"--format must be table or tsv, got {output_format!r}")
    try:
        results = similar(index, query, k, model=model, device=device)
    except (OSError, ValueError, RuntimeError, ImportError) as error:  # unknown keys say what to do
        fail(f"{type(error).__name__}: {error}")
    width = max((len(key) for key, _ in results), default=0)
    for key, similarity in results:  # key first in both, as in every maest TSV (path first): see the README
        if output_format == "tsv":
            typer.echo(f"{tsv_field(key)}\t{similarity:.4f}")
        else:
            typer.echo(f"{key:<{width}}  {similarity:7.4f}")


def map_command(
    embeddings: Annotated[Path, typer.Argument(help="An `maest embed` output (npy/npz tree or parquet), or a parquet table.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG to write.")],
    color_by: Annotated[Optional[str], typer.Option(
        "--color-by", help="'genre': each track's top Discogs genre (tags the audio: needs --audio-root unless the "
                           "keys are absolute paths); or a head folder (maest head fit): its most probable label.")] = None,
    audio_root: Annotated[Optional[Path], typer.Option(
        "--audio-root", help="With --color-by genre: the folder the embeddings' keys are relative to.")] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="With --color-by genre: the tagging model.")] = DEFAULT_MODEL,
    method: Annotated[str, typer.Option(
        "--method", help="auto (UMAP if installed, else PCA for few tracks, t-SNE), umap, pca or tsne.")] = "auto",
    device: DeviceOpt = None,
    decode_workers: DecodeWorkersOpt = 2,
) -> None:
    """Draw a 2-D map of a collection's embeddings (one point per track)."""
    require("eval", "matplotlib", "sklearn")
    from maest import plots
    from maest.index import read_embeddings

    try:
        collection = read_embeddings(embeddings)
        head = None
        if color_by is not None and color_by != "genre":
            from maest.heads import load_head

            head = load_head(color_by)
    except (OSError, ValueError, RuntimeError, ImportError) as error:
        fail(f"{type(error).__name__}: {error}")
    if head is not None:
        problem = _head_mismatch(head, collection.spec, collection.vectors.shape[1])
        if problem:
            fail(f"the head at {color_by} does not read these embeddings ({problem}): embed with the head's "
                 "settings (see its head.json) or colour by genre")
    colours = None
    try:
        if head is not None:
            colours = plots.head_top_labels(head, collection.vectors)
        elif color_by == "genre":
            colours = _genres(collection.keys, audio_root, model, device, decode_workers)
        figure, used = plots.collection_map(collection.vectors, colours, method=method, names=collection.keys)
        written = plots.save_figure(figure, output)
    except (OSError, ValueError, RuntimeError, ImportError) as error:
        fail(f"{type(error).__name__}: {error}")
    typer.echo(f"wrote {written}: {len(collection.keys)} tracks, {used.upper()} map")


def _genres(keys: list[str], audio_root: Path | None, model: str, device: str | None, workers: int) -> list[str]:
    """Top Discogs genre per key, from tagging its audio; keys without audio (or unreadable) are "unknown"."""
    from maest import plots
    from maest.extraction import audio_for_key, tag_files
    from maest.inference import load_model

    paths = [audio_for_key(key, audio_root) for key in keys]
    found = [str(p) for p in paths if p is not None]
    if not found:
        raise ValueError(f"none of the {len(keys)} tracks' audio was found"
                         f"{' under ' + str(audio_root) if audio_root else ''}: give --audio-root, the folder that was embedded")
    pipeline = load_model(model, device)
    genre: dict[str, str] = {}
    for path, probabilities, _reason in tag_files(found, pipeline, workers=workers):
        if probabilities is not None:
            genre[path] = plots.top_genres(probabilities[None], pipeline.labels)[0]
    missing = len(keys) - len(genre)
    if missing:
        typer.echo(f"{missing} of {len(keys)} tracks have no readable audio: coloured 'unknown'", err=True)
    return [genre.get(str(p), "unknown") if p is not None else "unknown" for p in paths]


def _head_mismatch(head, spec: dict, dim: int) -> str | None:
    """What differs between the embeddings a head reads and an embed output's settings (None: they fit).

    Same width is not enough: block 7 and block 12 of one model, or two models, give equal sizes."""
    wanted = head.spec
    if head.dim != dim:
        return f"{head.dim}-dim embeddings, not {dim}-dim"
    if not spec:  # an output without maest-embed.json: only the width is known
        return None
    from maest.spec import EmbeddingSpec

    differ = EmbeddingSpec.from_dict(spec).differences(wanted.embedding_spec())
    if spec.get("weights") is not None and spec["weights"] != wanted.weights:
        return "another model's weights"
    return "; ".join(differ) or None
