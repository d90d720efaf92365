"""Compare two output trees of benchmarks/check_identical.sh: arrays exactly, text without timing/path fields."""

import json
import re
import sys
from pathlib import Path

import numpy as np

IGNORED_KEYS = {"elapsed_seconds", "seconds", "created", "time", "timestamp", "duration_s", "fitted_at", "date",
                "maest_version", "version", "segments_per_s",
                "build_seconds"}
SKIPPED = {"log.txt"}
EXPECTED: list = []  # settings files that differ only by the spec fields now recorded


def clean(value, old_root, new_root):
    if isinstance(value, dict):
        return {k: clean(v, old_root, new_root) for k, v in value.items() if k not in IGNORED_KEYS}
    if isinstance(value, list):
        return [clean(v, old_root, new_root) for v in value]
    if isinstance(value, str):
        return value.replace(new_root, old_root)
    return value


SPEC_KEYS = {"weights", "family", "blocks", "tokens", "patchout_time", "patchout_freq", "overlap", "crop", "segments",
             "precision", "resampler"}
SPEC_FILES = {"maest-embed.json", "features.json", "head.json", "index.json"}


def spec_only_change(old, new) -> bool:
    """True when ``new`` holds every field of ``old`` with its value and adds only recorded-spec fields (issue 17:
    settings files, caches and heads record the whole spec): old names are read as the spec names them."""
    if isinstance(old, dict) and isinstance(new, dict):
        flat = dict(new)
        if isinstance(flat.get("embedding"), dict) and "embedding" not in old:  # features.json nests the spec
            inner = flat.pop("embedding")
            flat.update({k: v for k, v in inner.items() if k not in flat})
        if "model_fingerprint" in old and "weights" in flat:  # head.json before the spec
            flat["model_fingerprint"] = flat["weights"]
        for key, value in old.items():
            if key not in flat or not spec_only_change(value, flat[key]):
                return False
        return all(k in SPEC_KEYS or k in old or k == "embedding" for k in new)
    return old == new


def text_of(path: Path, old_root: str, new_root: str) -> str:
    text = path.read_text(errors="replace").replace(new_root, old_root)
    return re.sub(r"\d+\.\d+ s\b|\d+(\.\d+)? audio s/s", "<t>", text)


def compare(a: Path, b: Path, old_root: str, new_root: str) -> str | None:
    suffix = a.suffix
    if suffix == ".npy":
        x, y = np.load(a, allow_pickle=False), np.load(b, allow_pickle=False)
        return None if x.dtype == y.dtype and np.array_equal(x, y) else f"array differs (max |d| {np.abs(x.astype(float) - y.astype(float)).max() if x.shape == y.shape else 'shape'})"
    if suffix == ".npz":
        x, y = np.load(a), np.load(b)
        if sorted(x.files) != sorted(y.files):
            return f"members {sorted(x.files)} vs {sorted(y.files)}"
        bad = [k for k in x.files if not (x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]))]
        return f"members differ: {bad}" if bad else None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        x, y = pq.read_table(a), pq.read_table(b)
        return None if x.equals(y) else "table differs"
    if suffix in (".json", ".jsonl"):
        try:
            if suffix == ".json":
                x, y = json.loads(a.read_text()), json.loads(b.read_text())
            else:
                x = [json.loads(line) for line in a.read_text().splitlines() if line.strip()]
                y = [json.loads(line) for line in b.read_text().splitlines() if line.strip()]
                if x and isinstance(x[0], dict) and "key" in x[0]:
                    x, y = sorted(x, key=lambda r: r["key"]), sorted(y, key=lambda r: r["key"])
        except ValueError:  # one JSON object per line (maest tag --format json)
            x, y = text_of(a, old_root, new_root), text_of(b, old_root, new_root)
        x, y = clean(x, old_root, new_root), clean(y, old_root, new_root)
        if x == y:
            return None
        if a.name in SPEC_FILES and spec_only_change(x, y):
            EXPECTED.append(a)
            return None
        if isinstance(x, dict) and isinstance(y, dict):
            keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
            return f"JSON differs in keys {keys}"
        return "JSON differs"
    if suffix in (".png", ".safetensors", ".index", ".faiss", ".bin", ".pkl", ".pt"):
        return None if a.read_bytes() == b.read_bytes() else "bytes differ"
    return None if text_of(a, old_root, new_root) == text_of(b, old_root, new_root) else "text differs"


def main(old: Path, new: Path) -> int:
    files = sorted(p.relative_to(old) for p in old.rglob("*") if p.is_file() and p.name not in SKIPPED)
    others = sorted(p.relative_to(new) for p in new.rglob("*") if p.is_file() and p.name not in SKIPPED)
    diffs = []
    for rel in sorted(set(others) - set(files)):
        diffs.append((rel, "only in new"))
    for rel in files:
        if not (new / rel).is_file():
            diffs.append((rel, "only in old"))
            continue
        why = compare(old / rel, new / rel, str(old), str(new))
        if why:
            diffs.append((rel, why))
    for rel, why in diffs:
        print(f"DIFF {rel}: {why}")
    print(f"{len(files)} files, {len(diffs)} differences ({len(EXPECTED)} settings files add only the recorded "
          "spec fields, e.g. resampler, family; counted as equal)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
