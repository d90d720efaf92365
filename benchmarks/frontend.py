"""Mel frontend throughput (audio seconds per second): maest vs Essentia vs librosa.

All three compute the same 96-band log-mel (16 kHz, 512/256, Slaney mel, log10(1 + 10000 x)) of
the same 10 minutes of audio (the real test clips, looped). Run: python benchmarks/frontend.py
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
from timing import median_time

from maest import audio
from maest.frontend import MelFrontend

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"
RESULTS = Path(__file__).resolve().parent / "results" / "frontend.md"


def ten_minutes() -> np.ndarray:
    clips = [audio.load(p) for p in sorted(CLIPS.glob("*")) if p.name in {
        "ambience_12s_16k_mono.wav", "imperialarmy_20s_22k_mono.mp3", "techbattle_30s_44k_stereo.ogg",
        "temple_8s_48k_stereo.flac"}]
    if not clips:  # no ../shared: synthetic music-like noise
        clips = [np.random.default_rng(0).standard_normal(16000 * 30).astype(np.float32) * 0.1]
    signal = np.concatenate(clips)
    return np.resize(signal, 600 * 16000).astype(np.float32)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    signal = ten_minutes()
    seconds = len(signal) / 16000
    frontend = MelFrontend(normalize=False)
    rows = []

    def run_maest():
        with torch.inference_mode():
            frontend(torch.from_numpy(signal)[None])

    rows.append(("maest (torch, CPU)", median_time(run_maest, args.repeats)))

    try:
        import essentia.standard as es

        algorithm = es.TensorflowInputMusiCNN()

        def run_essentia():
            np.stack([algorithm(f) for f in es.FrameGenerator(signal, frameSize=512, hopSize=256, startFromZero=True)])

        rows.append(("Essentia TensorflowInputMusiCNN", median_time(run_essentia, args.repeats)))
    except ImportError:
        pass
    try:
        import librosa

        def run_librosa():
            mel = librosa.feature.melspectrogram(
                y=signal, sr=16000, n_fft=512, hop_length=256, window="hann", center=True, n_mels=96,
                fmin=0.0, fmax=8000.0, htk=False, norm="slaney", power=2.0)
            np.log10(1 + 10000 * mel)

        rows.append(("librosa melspectrogram", median_time(run_librosa, args.repeats)))
    except ImportError:
        pass

    reference = dict(rows).get("librosa melspectrogram")
    lines = [
        "# Mel frontend throughput",
        "",
        f"{seconds:.0f} s of audio (real clips looped), median of {args.repeats} runs, "
        f"torch threads {args.threads}, {platform.processor() or platform.machine()}, torch {torch.__version__}.",
        "",
        "| frontend | seconds | audio s / s | vs librosa |",
        "|---|---|---|---|",
    ]
    for name, elapsed in rows:
        ratio = f"{reference / elapsed:.1f}x" if reference else "-"
        lines.append(f"| {name} | {elapsed:.3f} | {seconds / elapsed:,.0f} | {ratio} |")
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
