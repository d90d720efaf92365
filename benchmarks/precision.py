"""fp32 vs bf16 (vs int8) on this CPU: speed, the bf16 matmul peak, and how far bf16 moves the outputs.

The evidence behind ``--precision auto`` (maest.precision): bf16 only where the CPU has AMX or
AVX512-BF16. Not a test: run by hand (about 8-10 minutes on 2 shared cores without bf16 units,
where torch emulates bf16; far less on a CPU that has them):

    python benchmarks/precision.py [--tiny runs/tiny/model]

* the CPU's flags and the decision ``auto`` takes on it;
* matmul peaks (fp32 and bf16; fixed size, timed for >= 1 s each);
* model only: the full-size 30 s architecture (random weights), block 7, one 1875-frame segment per
  call; fp32, bf16 (autocast, as maest runs it) and torch dynamic int8 (every nn.Linear) take turns
  in every round, each round on the next real clip, so the same calls give the agreement figures;
* whole track: ``maest.extraction.extract`` (decode, mel, segments, model, writing) on a 30 s track
  made of the real clips (one segment), fp32 and bf16 interleaved; the model's share of it;
* agreement with fp32: block-7 embedding cosine on the real clips of the model-only rounds, top-5
  tags (full-size head, ``--tag-clips`` clips);
  with ``--tiny`` (the README's demo-trained model, if trained): cosine and top-3 tags on the real
  clips, the trained head's macro ROC-AUC and a ridge probe's on the demo data, per precision.
Writes benchmarks/results/precision.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from maest.registry import architecture
from maest.inference import load_model
from maest.model import Maest, pool_tokens
from maest.precision import CPU_BF16_FLAGS, auto_precision, cpu_flags, describe, matmul_weights_cast

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "precision.md"
AUDIO = ROOT.parent / "shared" / "data" / "audio"
CLIPS = ["techbattle_30s_44k_stereo.ogg", "imperialarmy_20s_22k_mono.mp3", "ambience_12s_16k_mono.wav",
         "temple_8s_48k_stereo.flac"]
ARCH = "discogs-maest-30s-pw-129e"


def block7_gflop(config, frames: int) -> float:
    """Multiply-adds x 2 of 7 blocks on one segment: the linear layers and the attention matrices."""
    tokens, width = config.conv_freq_rows() * config.conv_time_columns(frames) + 2, config.width
    hidden = int(width * config.mlp_ratio)
    linear = 2 * tokens * (width * 3 * width + width * width + 2 * width * hidden)
    attention = 2 * 2 * tokens * tokens * width
    return 7 * (linear + attention) / 1e9


def matmul_gflops(dtype: torch.dtype, size: int, min_seconds: float = 1.0) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds or calls < 2:
        a @ b
        calls += 1
    return 2 * size ** 3 * calls / (time.perf_counter() - start) / 1e9


def clip_segments(frames: int) -> torch.Tensor:
    """The first ``frames`` mel frames of each real clip (silence-padded), normalised as the model expects."""
    pipeline_frontend = load_model(Maest(architecture(ARCH)), "cpu", precision="fp32")
    pieces = []
    for name in CLIPS:
        mel, _ = pipeline_frontend.mel(AUDIO / name)
        if mel.shape[-1] < frames:
            mel = torch.nn.functional.pad(mel, (0, frames - mel.shape[-1]))
        pieces.append(mel[:, :frames])
    return torch.stack(pieces)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def macro_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Mean over labels of ROC-AUC (Mann-Whitney, ties counted half), labels with both classes only."""
    aucs = []
    for j in range(targets.shape[1]):
        pos, neg = scores[targets[:, j] > 0, j], scores[targets[:, j] == 0, j]
        if len(pos) and len(neg):
            greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
            aucs.append(greater / (len(pos) * len(neg)))
    return float(np.mean(aucs))


def top_agreement(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of rows whose top-k label sets are equal."""
    same = [set(np.argsort(-x)[:k]) == set(np.argsort(-y)[:k]) for x, y in zip(a, b)]
    return float(np.mean(same))


def model_only(config, segments: torch.Tensor, rounds: int, native_bf16: bool) -> dict:
    """fp32 / bf16 autocast (weights cast per call, as maest 0.x ran it, and cast once, as it runs now) /
    dynamic int8, block 7, one segment per call, interleaved; round r runs
    clip r % 4, so every precision sees every clip once (the first round is the warm-up)."""
    fp32 = Maest(config).eval()
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8)

    def run(model, bf16: bool, mel):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return pool_tokens(model.forward_features(mel, blocks=7)).float().numpy()

    variants = {"fp32": (fp32, False), "bf16": (fp32, True), "bf16 cast once": (matmul_weights_cast(fp32, "bf16"), True),
                "int8": (int8, False)}
    times: dict[str, list[float]] = {name: [] for name in (*variants, "peak fp32", "peak bf16")}
    outputs: dict[str, dict[int, np.ndarray]] = {name: {} for name in variants}
    for round_ in range(rounds):
        mel = segments[round_ % len(segments)][None]
        if round_:  # the matmul peaks in the same rounds, so load changes hit them as they hit the model
            times["peak fp32"].append(matmul_gflops(torch.float32, 2048, 0.5))
            times["peak bf16"].append(matmul_gflops(torch.bfloat16, 1024 if native_bf16 else 512, 0.5))
        order = list(variants.items())
        order = order[round_ % len(order):] + order[:round_ % len(order)]  # no variant always runs first
        for name, (model, bf16) in order:
            start = time.perf_counter()
            outputs[name][round_ % len(segments)] = run(model, bf16, mel)[0]
            if round_:
                times[name].append(time.perf_counter() - start)
            print(f"model-only round {round_} {name}: {time.perf_counter() - start:.2f} s", flush=True)
    return {"model": fp32, "int8": int8, "times": {n: statistics.median(t) for n, t in times.items()},
            "outputs": {n: np.stack([o[i] for i in sorted(o)]) for n, o in outputs.items()}}


def long_track(path: Path, frames: int) -> Path:
    """The real clips one after another (16 kHz, maest's decoder), cut to ``frames`` mel frames
    (one whole segment: the whole-track run costs one model call, as a model-only round does)."""
    from maest import audio

    samples = np.concatenate([audio.load(AUDIO / name) for name in CLIPS])[: (frames - 1) * 256]
    sf.write(path, samples, 16000)
    return path


def whole_track(model: Maest, track: Path, rounds: int) -> dict:
    """``extract`` (decode, mel, model, .npy writing) of one track, fp32 and bf16 taking turns."""
    from maest.extraction import extract

    pipelines = {p: load_model(model, "cpu", batch_size=8, precision=p) for p in ("fp32", "bf16")}
    times = {p: [] for p in pipelines}
    segments = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(rounds):
            for name, pipeline in pipelines.items():
                out = Path(scratch) / f"{name}-{round_}"
                summary = extract([track], out, pipeline, blocks=7, per_segment=True, output_format="npz",
                                  progress=False)
                times[name].append(summary.elapsed_seconds)
                segments[name] = np.load(next(out.rglob("*.npz")))["segment_embeddings"]
                print(f"whole-track round {round_} {name}: {summary.elapsed_seconds:.2f} s", flush=True)
    return {"times": {n: statistics.median(t) for n, t in times.items()}, "segments": len(segments["fp32"]),
            "cosine": float(cosine(segments["bf16"], segments["fp32"]).min())}


def full_size_tags(model: Maest, int8: torch.nn.Module, segments: torch.Tensor, clips: int) -> dict:
    """Class probabilities of the first ``clips`` real segments (all blocks, the head) per precision."""
    out = {}
    for name, net, bf16 in (("fp32", model, False), ("bf16", model, True), ("int8", int8, False)):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out[name] = torch.sigmoid(net(segments[:clips]).float()).numpy()
    return {"top5": top_agreement(out["bf16"], out["fp32"], 5), "top5_int8": top_agreement(out["int8"], out["fp32"], 5),
            "max_abs": float(np.abs(out["bf16"] - out["fp32"]).max()),
            "max_abs_int8": float(np.abs(out["int8"] - out["fp32"]).max()), "clips": clips}


def tiny_figures(path: Path) -> dict | None:
    """The demo-trained tiny model: real clips (cosine, top-3) and the demo's held-out tracks (the
    trained head's ROC-AUC on validation+test; a ridge probe fitted on validation, scored on test)."""
    demo = path.parents[2] / "data" / "demo"
    if not (path / "model.safetensors").exists() or not (demo / "test.tsv").exists():
        print(f"no trained tiny model at {path} (or no {demo}): skipped", flush=True)
        return None
    import json

    from maest.inference import EmbedOptions

    pipelines = {p: load_model(path, "cpu", precision=p) for p in ("fp32", "bf16")}
    labels = json.loads((demo / "labels.json").read_text())
    figures: dict = {"frames": pipelines["fp32"].config.segment_frames}
    real = {p: np.stack([pl.embed(AUDIO / c, blocks=2) for c in CLIPS]) for p, pl in pipelines.items()}
    tags = {p: np.stack([pl.predict(AUDIO / c) for c in CLIPS]) for p, pl in pipelines.items()}
    figures["clip_cosine"] = float(cosine(real["bf16"], real["fp32"]).min())
    figures["clip_top3"] = top_agreement(tags["bf16"], tags["fp32"], 3)
    rows = {split: [line.split("\t") for line in (demo / f"{split}.tsv").read_text().splitlines() if line]
            for split in ("validation", "test")}
    tracks = rows["validation"] + rows["test"]
    targets = np.array([[label in row[1].split(",") for label in labels] for row in tracks], dtype=float)
    mels = [pipelines["fp32"].mel(demo / row[0]) for row in tracks]  # decoded once, run per precision
    fit = len(rows["validation"])
    for p, pipeline in pipelines.items():
        def outputs(mode: str, options: EmbedOptions) -> np.ndarray:
            done = dict(pipeline.run_tracks(((i, m, d) for i, (m, d) in enumerate(mels)), mode, options))
            return np.stack([done[i].track for i in range(len(mels))])

        probs = outputs("tag", EmbedOptions(blocks=None))
        embeddings = outputs("embed", EmbedOptions(blocks=2))
        figures[f"head_auc_{p}"] = macro_auc(targets, probs)
        figures[f"probs_{p}"], figures[f"held_{p}"] = probs, embeddings
        mean, std = embeddings[:fit].mean(0), embeddings[:fit].std(0) + 1e-6
        x = np.c_[(embeddings - mean) / std, np.ones(len(embeddings))]
        weights = np.linalg.solve(x[:fit].T @ x[:fit] + np.eye(x.shape[1]), x[:fit].T @ targets[:fit])  # ridge
        figures[f"probe_auc_{p}"] = macro_auc(targets[fit:], x[fit:] @ weights)
    figures["held_cosine"] = float(cosine(figures["held_bf16"], figures["held_fp32"]).min())
    figures["held_probs_max_abs"] = float(np.abs(figures["probs_bf16"] - figures["probs_fp32"]).max())
    figures["held_tracks"] = len(tracks)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="model-only rounds (the first is a warm-up)")
    parser.add_argument("--track-rounds", type=int, default=2, help="whole-track rounds (fp32 and bf16 each)")
    parser.add_argument("--tag-clips", type=int, default=1, help="real clips for the full-size top-5 check")
    parser.add_argument("--tiny", type=Path, default=ROOT / "runs" / "tiny" / "model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    flags = cpu_flags() or frozenset()
    config = architecture(ARCH)
    gflop = block7_gflop(config, config.segment_frames)

    native = bool([f for f in CPU_BF16_FLAGS if f in flags])
    segments = clip_segments(config.segment_frames)
    model = model_only(config, segments, args.rounds, native)
    peaks = {"fp32": model["times"].pop("peak fp32"), "bf16": model["times"].pop("peak bf16")}
    peaks["bf16_size"] = 1024 if native else 512
    ref = model["outputs"]["fp32"]
    cos = {n: float(cosine(o, ref).min()) for n, o in model["outputs"].items()}
    same = np.array_equal(model["outputs"]["bf16"], model["outputs"]["bf16 cast once"])
    print(f"bf16 cast once == bf16 autocast bit for bit: {same}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        track = whole_track(model["model"], long_track(Path(scratch) / "real-30s.wav", config.segment_frames), args.track_rounds)
    track["cast_same"] = same
    tags = full_size_tags(model["model"], model["int8"], segments, args.tag_clips)
    tiny = tiny_figures(args.tiny)
    load_after = os.getloadavg()[0]
    write_report(args, flags, peaks, gflop, model["times"], cos, track, tags, tiny, (load_before, load_after),
                 time.perf_counter() - started)


def write_report(args, flags, peaks, gflop, times, cos, track, tags, tiny, load, wall) -> None:
    t = times
    found = [f for f in CPU_BF16_FLAGS if f in flags]
    shown = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c")))
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    whole = track["times"]
    n_clips = min(args.rounds, len(CLIPS))
    per_segment = {p: whole[p] / track["segments"] for p in whole}
    lines = [
        "# fp32, bf16 and int8 on this CPU: speed and agreement (`--precision auto`'s evidence)",
        "",
        f"`python benchmarks/precision.py`: {cpu}, {args.threads} torch threads, torch {torch.__version__}, "
        f"{platform.machine()}; load average {load[0]:.1f} before and {load[1]:.1f} after ({wall / 60:.1f} min; "
        "a machine shared with other jobs: compare ratios within this run, not absolute times).",
        "",
        f"CPU flags (vector/matrix): {' '.join(shown)}.",
        f"bf16 units ({', '.join(CPU_BF16_FLAGS)}): **{', '.join(found) if found else 'none'}**, so "
        f"`--precision auto` gives: {describe(auto_precision('cpu', frozenset(flags)))}.",
        "",
        "## Speed (interleaved in one run)",
        "",
        f"Model only: full-size `{ARCH}` architecture, random weights, block 7 ({gflop:.0f} GFLOP per 1875-frame "
        f"segment), one segment per call, median of {args.rounds - 1} rounds after a warm-up round.",
        "",
        "| what | fp32 | bf16, autocast casts weights per call | bf16, weights cast once (maest now) "
        "| int8 (dynamic, nn.Linear) |",
        "|---|---:|---:|---:|---:|",
        f"| matmul peak (same rounds) | {peaks['fp32']:.1f} GFLOP/s (2048^3) | {peaks['bf16']:.2f} GFLOP/s "
        f"({peaks['bf16_size']}^3) | same | - |",
        f"| block 7, s / segment | {t['fp32']:.2f} | {t['bf16']:.2f} | {t['bf16 cast once']:.2f} | {t['int8']:.2f} |",
        f"| block 7, GFLOP/s | {gflop / t['fp32']:.1f} | {gflop / t['bf16']:.1f} | {gflop / t['bf16 cast once']:.1f} "
        f"| {gflop / t['int8']:.1f} |",
        f"| block 7, share of the matmul peak | {gflop / t['fp32'] / peaks['fp32']:.0%} | "
        f"{gflop / t['bf16'] / peaks['bf16']:.0%} | {gflop / t['bf16 cast once'] / peaks['bf16']:.0%}"
        f"{'' if found else ' (emulated: the square matmul is no ceiling)'} | - |",
        f"| speed vs fp32 | 1.00x | {t['fp32'] / t['bf16']:.2f}x | {t['fp32'] / t['bf16 cast once']:.2f}x "
        f"| {t['fp32'] / t['int8']:.2f}x |",
        f"| whole track ({track['segments']} segment{'s' * (track['segments'] > 1)}, 30 s of real clips), s "
        f"| {whole['fp32']:.2f} | - | {whole['bf16']:.2f} | - |",
        f"| whole track, audio s / s | {30 / whole['fp32']:.2f} | - | {30 / whole['bf16']:.2f} | - |",
        f"| model-only share of whole-track time | {t['fp32'] / per_segment['fp32']:.0%} | - | "
        f"{t['bf16 cast once'] / per_segment['bf16']:.0%} | - |",
        "",
        "## Agreement with fp32",
        "",
        "| weights | check | bf16 (either cast: the same bits) | int8 |",
        "|---|---|---:|---:|",
        f"| full size, random | block-7 cls+dist+avg cosine, min over {n_clips} real clips | {cos['bf16']:.5f} | {cos['int8']:.5f} |",
        f"| full size, random | whole-track segment cosine, min over {track['segments']} segments | {track['cosine']:.5f} | - |",
        f"| full size, random | same top-5 of 400 tags ({tags['clips']} real clips) | {tags['top5']:.0%} | {tags['top5_int8']:.0%} |",
        f"| full size, random | max abs difference of a tag probability | {tags['max_abs']:.4f} | {tags['max_abs_int8']:.4f} |",
    ]
    if tiny is not None:
        lines += [
            f"| demo-trained tiny (2 blocks, {tiny['frames']} frames) | block-2 track cosine, min over 4 real clips | "
            f"{tiny['clip_cosine']:.5f} | - |",
            f"| demo-trained tiny | same top-3 of 6 tags, 4 real clips | {tiny['clip_top3']:.0%} | - |",
            f"| demo-trained tiny | block-2 cosine, min over {tiny['held_tracks']} held-out demo tracks | "
            f"{tiny['held_cosine']:.5f} | - |",
            f"| demo-trained tiny | trained head, macro ROC-AUC on validation+test (fp32 {tiny['head_auc_fp32']:.4f}) | "
            f"{tiny['head_auc_bf16']:.4f} | - |",
            f"| demo-trained tiny | max abs difference of a head probability | {tiny['held_probs_max_abs']:.4f} | - |",
            f"| demo-trained tiny | ridge probe (block 2, fitted on validation), test macro ROC-AUC (fp32 {tiny['probe_auc_fp32']:.4f}) | "
            f"{tiny['probe_auc_bf16']:.4f} | - |",
        ]
    else:
        lines += ["", f"(No demo-trained tiny model at {args.tiny}: train one with the README's tiny flow.)"]
    verdict_int8 = (min(t["fp32"], t["bf16 cast once"]) / t["int8"] >= 1.3 and cos["int8"] >= 0.995)
    lines += [
        "",
        "## Reading",
        "",
        f"- bf16 here runs at {t['fp32'] / t['bf16']:.2f}x fp32: "
        + ("the CPU has bf16 units." if found else
           "this CPU has no bf16 units, so torch emulates bf16 (its bf16 matmul reaches "
           f"{peaks['bf16'] / peaks['fp32']:.1%} of fp32's); `auto` keeps fp32, with outputs identical to "
           "`--precision fp32`. The AMX / AVX512-BF16 speed-up cannot be measured on this machine; issue 19 "
           "measured 2.4x fp32 for block 7 on a 2-core AMX CPU."),
        f"- Weights cast once instead of by autocast in every call: {t['bf16'] / t['bf16 cast once']:.2f}x the "
        f"per-call bf16 path; outputs {'identical bit for bit' if track['cast_same'] else 'NOT identical'}.",
        f"- Agreement: bf16 block-7 embeddings keep cosine >= {min(cos['bf16'], track['cosine']):.5f} to fp32"
        + (f", the trained tiny head's ROC-AUC moves by {abs(tiny['head_auc_bf16'] - tiny['head_auc_fp32']):.4f} "
           f"and the probe's by {abs(tiny['probe_auc_bf16'] - tiny['probe_auc_fp32']):.4f}" if tiny else "")
        + ": what a bf16 user gives up is small against a collection's differences between tracks.",
        f"- int8 (dynamic): {t['fp32'] / t['int8']:.2f}x fp32 and {t['bf16 cast once'] / t['int8']:.2f}x bf16, cosine "
        f"{cos['int8']:.4f}. Rule: ship at >= 1.3x the faster of fp32/bf16 with cosine >= 0.995: "
        + ("met on these random weights; int8 is not shipped before it is re-measured on trained weights (their "
           "activation outliers cost dynamic int8 accuracy) and the same top-5 tags on real clips"
           if verdict_int8 else "not met, so maest ships no int8") + ".",
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
