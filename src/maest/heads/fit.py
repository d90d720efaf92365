"""``maest head fit``: labels + audio -> cached embeddings -> validation split -> classifier -> thresholds -> HEAD/.

Prints nothing: :func:`fit_head` returns a :class:`HeadReport` whose :meth:`~HeadReport.summary` is
what a command line shows.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maest.atomic import atomic_write_text
from maest.probe import ProbeConfig, ProbeError
from maest.heads.classifier import Kind, choose_kind, train_logistic, train_mlp
from maest.heads.embeddings import cache_folder, embed_label_set
from maest.heads.head import META_FILE, WEIGHTS_FILE, head_from_parts
from maest.heads.labels import HeadDataError, LabelSet, read_labels
from maest.heads.spec import spec_for
from maest.heads.split import stratified_split
from maest.heads.validation import best_f1_thresholds, confusion_summary, multi_label_scores, single_label_scores

DEFAULT_MODEL = "discogs-maest-30s-pw-129e"
SKIPPED_FILE = "skipped.tsv"
REPORT_FILE = "report.json"
MIN_TRACKS_PER_LABEL = 2
ROUGH_VALIDATION_TRACKS = 20  # below this the summary warns that validation numbers are rough


@dataclass
class HeadReport:
    """What a fit did: counts, what was left out and why, validation scores (fractions), where files went."""

    output_dir: str
    mode: str
    classifier: str
    labels: list[str]
    tracks: dict[str, int]
    label_counts: dict[str, int]
    dropped_labels: dict[str, int]
    skipped_file: str | None
    validation_metrics: dict[str, Any]
    thresholds: dict[str, float] | None
    embeddings_dir: str
    split: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """The lines ``maest head fit`` prints."""
        t, m = self.tracks, self.validation_metrics
        kind = {"mlp": "MLP probe", "logistic": "logistic regression"}[self.classifier]
        lines = [f"fitted a {'single' if self.mode == 'single' else 'multi'}-label head: {len(self.labels)} labels, "
                 f"{kind} on {t['train']} training tracks"]
        line = f"tracks: {t['listed']} listed, {t['used']} used (train {t['train']}, validation {t['validation']}; {self.split})"
        if t["missing"] or t["unreadable"]:
            line += f"; skipped {t['missing']} missing and {t['unreadable']} unreadable, listed in {self.skipped_file}"
        lines.append(line)
        if self.dropped_labels:
            lines.append(f"dropped labels with fewer than {MIN_TRACKS_PER_LABEL} usable tracks: "
                         + ", ".join(f"{k} ({v})" for k, v in self.dropped_labels.items()))
        if self.mode == "single":
            lines.append(f"validation ({m['tracks']} tracks): accuracy {100 * m['accuracy']:.1f}%, "
                         f"macro-F1 {100 * m['f1_macro']:.1f}%")
            confused = confusion_summary(m["confusion"], self.labels)
            lines.append("  most confused (true -> predicted): " + ("; ".join(confused) if confused else "none"))
        else:
            if "roc_auc_macro" in m:
                lines.append(f"validation ({m['tracks']} tracks): ROC-AUC {100 * m['roc_auc_macro']:.1f}%, "
                             f"mAP {100 * m['pr_auc_macro']:.1f}% (macro); F1 at the chosen thresholds "
                             f"{100 * m['f1_macro']:.1f}% (macro)")
            else:
                lines.append(f"validation ({m['tracks']} tracks): {m.get('note', 'no scores')}")
            if m.get("unscored_labels"):
                lines.append("  labels without positives or negatives in validation (threshold 0.5, unscored): "
                             + ", ".join(m["unscored_labels"]))
        lines += [f"note: {n}" for n in self.notes]
        out = Path(self.output_dir)
        lines.append(f"wrote {out / WEIGHTS_FILE}, {out / META_FILE}, {out / REPORT_FILE}; embeddings cached in {self.embeddings_dir}")
        return "\n".join(lines)


def _merge_duplicates(labels: LabelSet) -> tuple[LabelSet, int]:
    """One row per path: tags of repeated rows are merged (a later split value must agree)."""
    first: dict[str, int] = {}
    paths, tags, splits = [], [], []
    for path, row_tags, split in zip(labels.paths, labels.tags, labels.split):
        if path in first:
            k = first[path]
            if splits[k] != split:
                raise HeadDataError(f"{path} is listed in both {splits[k]} and {split}; give it one split")
            tags[k] = list(dict.fromkeys(tags[k] + row_tags))
            continue
        first[path] = len(paths)
        paths.append(path), tags.append(list(row_tags)), splits.append(split)
    repeated = len(labels.paths) - len(paths)
    return LabelSet(paths, tags, labels.mode, labels.audio_root, labels.source, splits), repeated


def _write_skipped(output: Path, skipped: Sequence[tuple[str, str]]) -> str | None:
    target = output / SKIPPED_FILE
    if not skipped:
        target.unlink(missing_ok=True)
        return None
    clean = lambda s: " ".join(str(s).split())  # noqa: E731  (one line, no tabs)
    atomic_write_text(target, "path\treason\n" + "".join(f"{p}\t{clean(r)}\n" for p, r in skipped))
    return str(target)


def fit_head(
    labels: str | os.PathLike | LabelSet,
    output_dir: str | os.PathLike,
    *,
    audio_root: str | os.PathLike | None = None,
    model: Any = DEFAULT_MODEL,
    blocks: int | str = "auto",
    tokens: Sequence[str] = ("cls", "dist", "avg"),
    patchout_time: int = 1,
    patchout_freq: Sequence[int] = (),
    overlap: float = 0.5,
    validation: float = 0.2,
    seed: int = 0,
    classifier: Kind = "auto",
    probe_config: ProbeConfig | None = None,
    device: str | None = None,
    batch_size: int = 8,
    decode_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    precision: str | None = None,
    resampler: str | None = None,
    engine: Any = None,
) -> HeadReport:
    """Fit a head on ``labels`` (TSV/CSV or ``ROOT/<class>/<files>``) and save it to ``output_dir``.

    ``model``: registry name, hub id, checkpoint path or a loaded :class:`~maest.inference.MaestPipeline`.
    Embeddings are cached under ``cache_dir`` (default ``output_dir/embeddings``) and reused on a rerun.
    ``validation``: the held-out fraction, unless the labels file has a ``split`` column.
    ``classifier``: "auto" (logistic regression below 400 training tracks, else the paper's MLP), "mlp" or "logistic".
    ``engine``: where tracks are embedded (an :class:`~maest.extraction.engines.Engine`; default local).
    """
    from maest.extraction.engines import LocalEngine, load_pipeline

    label_set = labels if isinstance(labels, LabelSet) else read_labels(labels, audio_root)
    label_set, repeated = _merge_duplicates(label_set)
    listed = len(label_set)
    if not label_set.labels:
        raise HeadDataError(f"{label_set.source} names no labels; give each track tags (path<TAB>tag1,tag2) or put "
                            "files in class folders (ROOT/<class>/<files>)")
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    pipeline = load_pipeline(engine or LocalEngine(), model, device, batch_size, precision)
    # The fit's one spec, checked against the model before any decoding; head.json records it.
    embedding = pipeline.spec(blocks=blocks, tokens=tuple(tokens), patchout_time=patchout_time,
                              patchout_freq=tuple(patchout_freq), overlap=overlap, resampler=resampler)
    source = None  # how to load the model again (maest tag --head): a registry name, hub id or absolute path
    if isinstance(model, (str, os.PathLike)):
        source = str(Path(model).resolve()) if Path(model).exists() else str(model)
    spec = spec_for(pipeline, embedding, source)
    folder = cache_folder(cache_dir if cache_dir is not None else output / "embeddings", spec, label_set.audio_root)
    x, kept, skipped = embed_label_set(label_set, pipeline, spec, folder, batch_size, decode_workers, progress, engine)
    skipped_file = _write_skipped(output, skipped)
    missing = sum(r.startswith("missing") for _, r in skipped)
    if not kept:
        raise HeadDataError(f"none of the {listed} listed tracks could be embedded ({missing} missing under "
                            f"{label_set.audio_root}; see {skipped_file}); check --audio-root")
    notes = [f"{repeated} repeated rows merged (their tags joined)"] if repeated else []
    used = label_set.subset(kept)
    counts = used.counts()
    dropped = {k: v for k, v in counts.items() if v < MIN_TRACKS_PER_LABEL}
    names = [k for k in sorted(counts) if k not in dropped]
    if used.mode == "multi":
        always = [k for k in names if counts[k] == len(used)]
        if always:
            notes.append(f"labels on every track dropped (nothing to tell apart): {', '.join(always)}")
            names = [k for k in names if k not in always]
    y = used.targets(names)
    if used.mode == "single":  # a track whose class was dropped has no class left
        rows = np.flatnonzero(y.any(axis=1))
        used, x, y = used.subset(rows.tolist()), x[rows], y[rows]
    if len(names) < (2 if used.mode == "single" else 1):
        raise HeadDataError(
            f"{len(names)} usable label(s) ({', '.join(names) or 'none'}; dropped with fewer than "
            f"{MIN_TRACKS_PER_LABEL} tracks: {', '.join(dropped) or 'none'}): a head needs "
            + ("two classes with two or more tracks each; add a folder of another class" if used.mode == "single"
               else "a label with two or more tracks that is not on every track; add more labelled tracks"))
    if used.has_split:
        train_idx = np.array([i for i, s in enumerate(used.split) if s == "train"], dtype=int)
        valid_idx = np.array([i for i, s in enumerate(used.split) if s == "validation"], dtype=int)
        split_text = "split column"
    else:
        train_idx, valid_idx = stratified_split(y, validation, seed)
        split_text = f"stratified {validation:g} held out, seed {seed}"
    if len(train_idx) == 0 or len(valid_idx) == 0:
        raise HeadDataError(f"the split leaves {len(train_idx)} training and {len(valid_idx)} validation tracks; "
                            "both need tracks (fix the split column or label more tracks)")
    unseen = [names[j] for j in range(len(names)) if not y[train_idx, j].any()]
    if unseen:
        notes.append(f"labels without training tracks dropped: {', '.join(unseen)}")
        keep = [j for j, n in enumerate(names) if n not in unseen]
        names, y = [names[j] for j in keep], y[:, keep]
        if len(names) < (2 if used.mode == "single" else 1):
            raise HeadDataError("too few labels have training tracks; put more tracks in the train split")
        if used.mode == "single":  # validation tracks of a dropped class have no class left
            train_idx, valid_idx = train_idx[y[train_idx].any(axis=1)], valid_idx[y[valid_idx].any(axis=1)]
            if len(valid_idx) == 0:
                raise HeadDataError("no validation track has a class that is also in the train split; fix the split column")
    x_train, y_train, x_valid, y_valid = x[train_idx], y[train_idx], x[valid_idx], y[valid_idx]
    kind = choose_kind(classifier, len(train_idx))
    if kind == "mlp":
        try:
            trained = train_mlp(x_train, y_train, x_valid, y_valid, probe_config or ProbeConfig(), seed, "cpu")
        except ProbeError as error:
            raise HeadDataError(f"the MLP probe cannot be trained: {error}; use classifier='logistic' or label more "
                                "validation tracks") from None
    else:
        trained = train_logistic(x_train, y_train, used.mode)
    notes += trained.notes
    spec = dataclasses.replace(spec, dim=int(x.shape[1]))
    meta = {"training": {"labels_source": label_set.source, "audio_root": str(label_set.audio_root), "seed": seed,
                         "split": split_text, "tracks": {"train": int(len(train_idx)), "validation": int(len(valid_idx))},
                         "label_counts": {n: int(counts[n]) for n in names}, "dropped_labels": dropped}}
    head = head_from_parts(names, used.mode, spec, trained.kind, trained.mean, trained.std, trained.weights, None,
                           trained.architecture, meta)
    scores = head.predict(x_valid)
    if used.mode == "single":
        metrics = single_label_scores(y_valid, scores, names)
        thresholds = None
    else:
        head.thresholds, _ = best_f1_thresholds(y_valid, scores)
        metrics = multi_label_scores(y_valid, scores, head.thresholds, names)
        thresholds = {n: float(t) for n, t in zip(names, head.thresholds)}
        # labels in ``untuned`` keep threshold 0.5; the summary lists them (metrics' unscored_labels)
    if len(valid_idx) < ROUGH_VALIDATION_TRACKS:
        notes.append(f"validation holds only {len(valid_idx)} tracks: its scores and thresholds are rough; "
                     "label more tracks for numbers to trust")
    head.metadata["validation"] = metrics
    head.save(output)
    tracks = {"listed": listed, "used": int(len(train_idx) + len(valid_idx)), "train": int(len(train_idx)),
              "validation": int(len(valid_idx)), "missing": missing, "unreadable": len(skipped) - missing}
    report = HeadReport(str(output), used.mode, trained.kind, names, tracks, {n: int(counts[n]) for n in names}, dropped,
                        skipped_file, metrics, thresholds, str(folder), split_text, notes)
    atomic_write_text(output / REPORT_FILE, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
