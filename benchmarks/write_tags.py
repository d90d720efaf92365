"""Tracks per second for `maest tag --write-tags` vs plain `maest tag` on the shared clips.

Full-size discogs-maest-30s-pw-129e architecture, random weights, CPU, torch 2 threads, batch 8; the
5 good clips of ../shared/data/audio (WAV, MP3, Ogg, FLAC) copied ``--copies`` times into a folder.
1. plain: :func:`maest.extraction.run_files` in "tag" mode over the folder (what `maest tag` runs
   before printing);
2. write: :func:`maest.library.write_collection_tags` over a fresh copy of the folder (model, then
   merge + copy + tag + fsync + rename per file); the copy is made before the clock starts;
3. writing alone: :func:`maest.library.update_file_tags` per file (no model), ms per file;
4. rerun: ``write_collection_tags`` again on the tagged folder (skips every file: no model work).
Plain and write take turns for ``--repeats`` rounds after a warm-up; medians reported.

    python benchmarks/write_tags.py            # about 2-4 minutes on 2 shared cores
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "data" / "audio"
GOOD = ["ambience_12s_16k_mono.wav", "imperialarmy_20s_22k_mono.mp3", "menu_0.5s_44k_stereo.wav",
        "techbattle_30s_44k_stereo.ogg", "temple_8s_48k_stereo.flac"]
ARCH = "discogs-maest-30s-pw-129e"
RESULTS = ROOT / "benchmarks" / "results" / "write_tags.md"


def build_pipeline():
    import torch

    from maest.registry import architecture
    from maest.inference import MaestPipeline
    from maest.model import Maest

    torch.manual_seed(0)
    return MaestPipeline(Maest(architecture(ARCH)), device="cpu", batch_size=8)


def make_folder(target: Path, copies: int) -> list[Path]:
    target.mkdir(parents=True)
    for c in range(copies):
        for name in GOOD:
            shutil.copy(AUDIO / name, target / f"{c}-{name}")
            os.chmod(target / f"{c}-{name}", 0o644)  # the shared clips are read-only, which --write-tags respects
    return sorted(target.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import torch

    from maest.extraction import run_files
    from maest.inference import EmbedOptions
    from maest.library import TagChoice, update_file_tags, write_collection_tags

    torch.set_num_threads(2)
    started = time.perf_counter()
    pipeline = build_pipeline()
    choice = TagChoice()
    tmp = Path(tempfile.mkdtemp(prefix="maest-write-tags-"))
    source = tmp / "source"
    files = make_folder(source, args.copies)
    options = EmbedOptions(blocks=None)

    def plain() -> float:
        t = time.perf_counter()
        for _, result, reason in run_files([source], pipeline, "tag", options, batch_size=8):
            assert reason is None, reason
        return time.perf_counter() - t

    rounds = 0

    def write() -> tuple[float, Path]:
        nonlocal rounds
        rounds += 1
        folder = tmp / f"write-{rounds}"
        shutil.copytree(source, folder)
        t = time.perf_counter()
        summary = write_collection_tags([folder], pipeline, choice, batch_size=8)
        elapsed = time.perf_counter() - t
        assert summary.written == len(files) and not summary.failures, summary
        return elapsed, folder

    plain(), write()  # warm-up
    plain_times, write_times = [], []
    for _ in range(args.repeats):
        plain_times.append(plain())
        elapsed, tagged = write()
        write_times.append(elapsed)
    t = time.perf_counter()
    rerun = write_collection_tags([tagged], pipeline, choice, batch_size=8)
    rerun_seconds = time.perf_counter() - t
    assert rerun.skipped == len(files), rerun
    alone_folder = tmp / "alone"
    shutil.copytree(source, alone_folder)
    per_file = []
    for path in sorted(alone_folder.iterdir()):
        t = time.perf_counter()
        update_file_tags(path, {"GENRE": ["Electronic"], "STYLE": ["Techno", "House"]}, "benchmark")
        per_file.append(time.perf_counter() - t)
    shutil.rmtree(tmp)

    n = len(files)
    p, w = statistics.median(plain_times), statistics.median(write_times)
    load = os.getloadavg()[0]
    text = f"""# Writing tags into files: `maest tag --write-tags` vs `maest tag`

`python benchmarks/write_tags.py`: {ARCH} architecture (random weights), torch {torch.__version__}, 2 threads,
{platform.machine()} ({os.cpu_count()} cores; load average at the end {load:.1f}: a shared machine, so absolute
numbers are pessimistic). {n} files: the 5 good clips of `../shared/data/audio` (WAV, MP3, Ogg Vorbis, FLAC)
x {args.copies}; batch 8; median of {args.repeats} interleaved rounds after a warm-up.

| run | s | tracks/s |
|---|---|---|
| plain `maest tag` (run_files, tag mode) | {p:.2f} | {n / p:.2f} |
| `--write-tags` (model + merge, copy, tag, fsync, rename) | {w:.2f} | {n / w:.2f} |
| `--write-tags` rerun on the tagged folder (every file skipped, no model) | {rerun_seconds:.2f} | {n / rerun_seconds:.1f} |

Writing alone (`update_file_tags`, no model): median {statistics.median(per_file) * 1000:.1f} ms per file,
max {max(per_file) * 1000:.1f} ms (the copy of the file is most of it: the clips are 0.1-5 MB).
Writing costs {100 * (w - p) / p:+.1f} % of the plain run's time (noise included).

Total benchmark time: {(time.perf_counter() - started) / 60:.1f} min.
"""
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
