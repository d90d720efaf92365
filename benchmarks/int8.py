"""CPU int8 for the block-7 embedding path: is it worth shipping? (issue: ship only at >= 1.3x fp32
with embedding cosine >= 0.995 on real music).

Not a test: run ``python benchmarks/int8.py`` by hand; writes benchmarks/results/int8.md.
Candidates: torch dynamic int8 (``quantize_dynamic`` on every ``nn.Linear``) and ONNX Runtime
(fp32 graph, and its dynamic int8 quantisation of the same graph). The model is the full-size
30 s architecture with random weights (no published weights can be downloaded here; trained
weights have larger activation outliers, so the cosine measured here is an upper bound).
Input: segments of the real clips in ../shared/data/audio (music and ambience).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from maest.registry import architecture
from maest.model import Maest, pool_tokens
from timing import interleaved_medians

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "int8.md"
AUDIO = HERE.parent.parent / "shared" / "data" / "audio"
CLIPS = ["techbattle_30s_44k_stereo.ogg", "imperialarmy_20s_22k_mono.mp3", "ambience_12s_16k_mono.wav",
         "temple_8s_48k_stereo.flac"]


class Block7(torch.nn.Module):
    """mel -> cls, dist, avg after 7 blocks (the paper's embedding), as one traceable module."""

    def __init__(self, model: Maest):
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return pool_tokens(self.model.forward_features(mel, blocks=7))


def real_segments(frames: int) -> torch.Tensor:
    """One segment per real clip (the first ``frames`` frames, silence-padded), normalised mel."""
    from maest import audio, frontend

    mel_frontend = frontend.MelFrontend()
    pieces = []
    for name in CLIPS:
        samples = audio.load(AUDIO / name)
        mel = mel_frontend(torch.from_numpy(samples)[None])[0]
        if mel.shape[-1] < frames:
            mel = torch.nn.functional.pad(mel, (0, frames - mel.shape[-1]))
        pieces.append(mel[:, :frames])
    return torch.stack(pieces)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = architecture("discogs-maest-30s-pw-129e")
    fp32 = Block7(Maest(config).eval())
    mel = real_segments(config.segment_frames)  # (4, 96, 1875)
    one = mel[:1]
    with torch.inference_mode():
        reference = fp32(mel).numpy()

    # Every candidate: (name, run one segment, embeddings of all real segments).
    candidates: list[tuple[str, object, np.ndarray]] = [("torch fp32 (reference)", lambda: fp32(one), reference)]
    dynamic = torch.ao.quantization.quantize_dynamic(fp32, {torch.nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        candidates.append(("torch dynamic int8 (nn.Linear)", lambda: dynamic(one), dynamic(mel).numpy()))
    failed = []
    tmp = tempfile.TemporaryDirectory()
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = Path(tmp.name) / "block7.onnx"
        torch.onnx.export(fp32, (one,), str(graph), input_names=["mel"], output_names=["embedding"],
                          dynamic_axes={"mel": {0: "batch"}, "embedding": {0: "batch"}}, dynamo=False)
        quantized = Path(tmp.name) / "block7.int8.onnx"
        quantize_dynamic(str(graph), str(quantized), weight_type=QuantType.QInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        for label, path in (("ONNX Runtime fp32", graph), ("ONNX Runtime dynamic int8", quantized)):
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            out = np.concatenate([session.run(None, {"mel": m[None].numpy()})[0] for m in mel])
            candidates.append((label, lambda s=session: s.run(None, {"mel": one.numpy()}), out))
    except Exception as error:  # an exporter or quantiser failure is a result too
        failed.append(f"ONNX Runtime: failed ({type(error).__name__}: {error})")
    with torch.inference_mode():
        seconds = interleaved_medians([run for _, run, _ in candidates], args.repeats)
    tmp.cleanup()
    rows = [(name, s, seconds[0] / s, float(cosine(out, reference).min()))
            for (name, _, out), s in zip(candidates, seconds)]
    ship = [r for r in rows[1:] if r[2] >= 1.3 and r[3] >= 0.995]
    lines = [
        "# CPU int8 for the block-7 embedding",
        "",
        f"`python benchmarks/int8.py`: full-size 30 s architecture, random weights, one 1875-frame segment per "
        f"call, torch {torch.__version__}, {args.threads} threads, {platform.machine()}, median of {args.repeats} "
        f"interleaved rounds after a warm-up round; load average {os.getloadavg()[0]:.1f} at the end (a shared machine: compare ratios, "
        f"not absolute times). Cosine: the smallest over the first 30 s of {len(CLIPS)} real clips "
        f"({', '.join(CLIPS)}) between the candidate's and torch fp32's cls+dist+avg embeddings.",
        "",
        "| engine | s / segment | speed-up vs fp32 | min cosine vs fp32 |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {s:.3f} | {x:.2f}x | {c:.5f} |" for name, s, x, c in rows],
        *[f"| {line} | | | |" for line in failed],
        "",
        "Rule: ship an int8 option only if it is >= 1.3x the fp32 block-7 path with cosine >= 0.995.",
        "",
        ("Verdict: " + (f"{ship[0][0]} meets it." if ship else
                        "no candidate meets both conditions, so maest ships no int8 option.")),
        "",
        "Caveat: random weights. Trained ViT weights have activation outliers that make dynamic int8 "
        "less accurate, so a candidate that fails here fails on the published weights too; one that "
        "passes must be re-measured on them before shipping.",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
