"""``maest eval``: split files + audio + model -> cached embeddings -> MLP probe -> test ROC-AUC/mAP.

Embeddings are extracted with :func:`maest.extraction.extract` (resumable, atomic) over a folder of
symbolic links mirroring only the dataset's tracks, so the output tree mirrors the dataset's paths.
Results go to ``output_dir/results.json`` and ``results.md``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from maest.atomic import atomic_write_text
from maest.evaluate.datasets import Dataset, MissingAudioError, check_audio, drop_paths, load_dataset
from maest.evaluate.features import token_letters
from maest.metrics import TaggingScores, markdown_table
from maest.evaluate.probe import ProbeData, get_protocol, grid_search
from maest.extraction.embed_cache import audio_view, embed_tracks, embedding_file, load_embeddings  # noqa: F401
from maest.spec import EmbeddingSpec


class EvalError(RuntimeError):
    """The evaluation cannot proceed (e.g. every track of a split failed to decode)."""


def model_tag(model: Any) -> str:
    """A folder-safe name for a model given by name, path or object (used to key caches)."""
    if isinstance(model, (str, os.PathLike)):
        name = Path(model).name or str(model)
        name = Path(name).stem if name.endswith(".safetensors") else name
    else:
        config = getattr(model, "config", None)
        name = getattr(config, "name", type(model).__name__)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)) or "model"


SEGMENT_NOTES = {
    "original": "the original code's half-overlapping segments, partial ones zero-padded, as the paper's numbers were made",
    "maest": "maest's half-overlapping segments covering every frame, short tracks at their own length",
}


@dataclass
class EvalResult:
    """One evaluation: what was run and its test scores (fractions; Markdown shows percent)."""

    dataset: str
    variant: str
    model: str
    protocol: str
    blocks: int
    tokens: list[str]
    counts: dict[str, int]
    dropped: dict[str, dict[str, int]]
    probe_config: dict
    best_epoch: int
    valid_roc_auc: float
    test: TaggingScores
    notes: list[str] = field(default_factory=list)
    segments: str = "original"

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["test"] = self.test.to_dict()
        return out

    def row(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "protocol": self.protocol, "blocks": self.blocks,
                "tokens": "+".join(self.tokens), "ROC-AUC": self.test.roc_auc_macro, "mAP": self.test.pr_auc_macro,
                "ROC-AUC micro": self.test.roc_auc_micro, "mAP micro": self.test.pr_auc_micro}

    def markdown(self) -> str:
        columns = ["dataset", "model", "protocol", "blocks", "tokens", "ROC-AUC", "mAP", "ROC-AUC micro", "mAP micro"]
        lines = [f"# maest eval: {self.dataset}", "", markdown_table([self.row()], columns),
                 f"Scores in percent, macro over labels unless marked micro; test split, weights of the best "
                 f"validation ROC-AUC epoch ({self.best_epoch}, validation ROC-AUC {100 * self.valid_roc_auc:.2f}).", "",
                 f"- split files: {self.variant}", f"- tracks used: {self.counts}",
                 f"- segments: {self.segments} rule ({SEGMENT_NOTES.get(self.segments, '')})",
                 f"- probe: {json.dumps(self.probe_config)}"]
        if any(v["missing"] or v["failed"] for v in self.dropped.values()):
            lines.append(f"- tracks left out (missing audio / failed decoding): {self.dropped}")
        if self.test.skipped:
            lines.append(f"- labels without positives or negatives in test, left out of macro averages: {', '.join(self.test.skipped)}")
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def run_eval(
    dataset: str | Dataset,
    metadata: str | os.PathLike | None,
    audio_root: str | os.PathLike,
    model: Any,
    output_dir: str | os.PathLike,
    *,
    protocol: str = "paper",
    grid: bool = False,
    blocks: int | None = None,
    tokens: Sequence[str] | None = None,
    patchout_time: int = 1,
    patchout_freq: Sequence[int] = (),
    overlap: float = 0.5,
    segments: str | None = None,
    device: str | None = None,
    batch_size: int = 8,
    decode_workers: int = 0,
    probe_workers: int | None = None,
    probe_device: str = "cpu",
    allow_missing: bool = False,
    seed: int = 0,
    dataset_options: Mapping[str, Any] | None = None,
    probe_overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
    precision: str | None = None,
    resampler: str | None = None,
    engine: Any = None,
) -> EvalResult:
    """Evaluate ``model`` on ``dataset`` with a named probe ``protocol`` ("paper" or "original-repo").

    ``blocks``/``tokens`` default to the protocol's (paper: 7, cls+dist+avg; original-repo: 7, cls).
    ``segments`` defaults to the protocol's segment rule ("original" for both: the paper's numbers were
    made with it, :mod:`maest.segments`); "maest" embeds as ``maest embed`` does.
    ``grid=True`` runs the protocol's grid search (selection on validation). Missing audio raises
    :class:`MissingAudioError` with per-split counts unless ``allow_missing`` (then it is reported).
    ``precision``/``resampler`` (default by device / essentia) are part of the embedding spec: the
    cached embeddings' folder is named by them and its maest-embed.json refuses another.
    ``engine``: where tracks are embedded (an :class:`~maest.extraction.engines.Engine`; default local).
    """
    import dataclasses

    from maest.extraction.engines import LocalEngine, load_pipeline

    chosen = get_protocol(protocol)
    blocks = chosen.blocks if blocks is None else blocks
    tokens = tuple(chosen.tokens if tokens is None else tokens)
    segments = chosen.segments if segments is None else segments
    # Checked (with the resampler) before the dataset or the model is read; tied to the model below.
    EmbeddingSpec(blocks=blocks, tokens=tokens, patchout_time=patchout_time, patchout_freq=tuple(patchout_freq),
                  overlap=overlap, segments=segments, resampler=resampler or "essentia")
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    if isinstance(dataset, str):
        if metadata is None:
            raise ValueError("metadata (the split files' location) is needed to load a dataset by name")
        dataset = load_dataset(dataset, metadata, **dict(dataset_options or {}))
    report = check_audio(dataset, audio_root)
    atomic_write_text(output / "audio_check.json", json.dumps(report.to_dict(), indent=2))
    if not report.ok and not allow_missing:
        raise MissingAudioError(report)
    missing = {p for paths in report.missing.values() for p in paths}
    before = dataset.counts()
    if missing:
        dataset = drop_paths(dataset, missing, f"{len(missing)} tracks without audio left out ({report.summary()})")
    pipeline = load_pipeline(engine or LocalEngine(), model, device, batch_size, precision)
    depth = pipeline.config.depth
    if not 1 <= blocks <= depth:
        raise EvalError(f"blocks={blocks} but the model has {depth} blocks; pass blocks in 1..{depth}")
    spec = pipeline.spec(blocks=blocks, tokens=tokens, patchout_time=patchout_time, patchout_freq=tuple(patchout_freq),
                         overlap=overlap, segments=segments, resampler=resampler)
    tag = model_tag(model)
    letters = token_letters(tokens)
    freq = "-".join(str(r) for r in patchout_freq) or "none"
    embeddings_dir = output / "embeddings" / tag / spec.key()  # the folder's maest-embed.json holds the spec
    failures = embed_tracks(dataset.all_paths(), audio_root, pipeline, embeddings_dir, spec, batch_size,
                            decode_workers, progress, engine)
    if failures:
        dataset = drop_paths(dataset, set(failures), f"{len(failures)} tracks failed to decode (see {embeddings_dir}/failures.tsv)")
    counts = dataset.counts()
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise EvalError(f"no usable tracks left in split(s) {empty}; see {output / 'audio_check.json'}")
    splits = dataset.splits
    data = ProbeData(
        load_embeddings(embeddings_dir, splits["train"].paths), splits["train"].targets,
        load_embeddings(embeddings_dir, splits["validation"].paths), splits["validation"].targets,
        load_embeddings(embeddings_dir, splits["test"].paths), splits["test"].targets, dataset.labels,
    )
    base = dataclasses.replace(chosen.config, **dict(probe_overrides or {}))
    probe_dir = (output / "probe" / f"{tag}-b{blocks}-{letters}-t{patchout_time}-f{freq}{spec.suffix()}-{protocol}"
                                    f"{'-grid' if grid else ''}-seed{seed}")
    search = grid_search(data, probe_dir, base, chosen.grid if grid else {}, probe_workers, seed, progress, probe_device)
    best = search.best
    dropped = {n: {"missing": len(report.missing[n]),
                   "failed": before[n] - len(report.missing[n]) - counts[n]} for n in before}
    result = EvalResult(
        dataset=dataset.name, variant=dataset.variant, model=tag, protocol=protocol + (" + grid" if grid else ""),
        blocks=blocks, tokens=list(tokens), counts=counts, dropped=dropped, probe_config=best["config"],
        best_epoch=best["best_epoch"], valid_roc_auc=best["valid_roc_auc"], test=TaggingScores(**best["test"]),
        notes=list(dataset.notes), segments=segments,
    )
    atomic_write_text(output / "results.json", json.dumps(result.to_dict(), indent=2))
    atomic_write_text(output / "results.md", result.markdown())
    return result
