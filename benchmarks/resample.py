"""The input path per stage on one core: decode, downmix, resample; and each resampler's mel vs Essentia.

A 120 s 44.1 kHz stereo track is made from the real clips (techbattle, looped) and written as FLAC
and MP3; a 120 s 22.05 kHz mono MP3 (imperialarmy, looped) shows ``load`` where there is no
downmix to save. Per stage, x realtime on one core (torch and BLAS on one thread, median of ``--repeats``):
decoding (soundfile), the downmix before (``mean`` over the strided channel axis) and now
(:func:`maest.resample.downmix`), soxr HQ, libsamplerate sinc_medium (PyPI ``samplerate``, the
reference), maest's sinc_medium (:func:`maest.resample.sinc_medium`), and ``maest.audio.load``
end to end before (mean + soxr) and now. Fidelity: each resampler's mel against Essentia's file
pipeline (``melspectrogram(path)``) on the same files, all frames but the last five.
Run: python benchmarks/resample.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: BLAS reads this at import
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from timing import median_time  # noqa: E402

from maest import audio, resample  # noqa: E402
from maest.frontend import MelFrontend  # noqa: E402

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"
RESULTS = Path(__file__).resolve().parent / "results" / "resample.md"
SECONDS = 120
RATE = 44100


def make_track(folder: Path) -> dict[str, Path]:
    """120 s of 44.1 kHz stereo (the real Ogg clip looped; noise without ../shared) as FLAC and MP3."""
    source = CLIPS / "techbattle_30s_44k_stereo.ogg"
    if source.exists():
        clip, rate = sf.read(source, dtype="float32", always_2d=True)
        assert rate == RATE
    else:
        clip = (np.random.default_rng(0).standard_normal((RATE * 30, 2)) * 0.1).astype(np.float32)
    track = np.resize(clip, (SECONDS * RATE, 2))
    paths = {"flac": folder / "track.flac", "mp3": folder / "track.mp3"}
    sf.write(paths["flac"], track, RATE, subtype="PCM_16")
    sf.write(paths["mp3"], track, RATE, format="MP3")
    mono_source = CLIPS / "imperialarmy_20s_22k_mono.mp3"  # mono: no downmix to save
    if mono_source.exists():
        mono, mono_rate = sf.read(mono_source, dtype="float32")
        paths["mono_mp3"] = folder / "mono22k.mp3"
        sf.write(paths["mono_mp3"], np.resize(mono, SECONDS * mono_rate), mono_rate, format="MP3")
    return paths




def essentia_mel(path: Path) -> np.ndarray:
    from essentia.pytools.extractors.melspectrogram import melspectrogram

    return melspectrogram(
        str(path), sample_rate=16000, frame_size=512, hop_size=256, window_type="hann",
        low_frequency_bound=0, high_frequency_bound=8000, number_bands=96,
        warping_formula="slaneyMel", weighting="linear", normalize="unit_tri",
        bands_type="power", compression_type="shift_scale_log",
    )


def mel_difference(signal: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    with torch.inference_mode():
        mel = MelFrontend(normalize=False)(torch.from_numpy(signal)[None])[0].numpy().T
    frames = min(len(mel), len(reference)) - 5  # the resamplers flush their tails differently
    difference = np.abs(mel[:frames] - reference[:frames])
    return float(difference.max()), float(difference.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import samplerate
    import soxr

    lines = [
        "# Input path: decode, downmix, resample (one core)",
        "",
        f"{SECONDS} s 44.1 kHz stereo track (real clip looped), median of {args.repeats} runs, torch and BLAS "
        f"on 1 thread, {platform.machine()}, torch {torch.__version__}. x realtime = audio seconds per "
        "second of one core. The machine is shared: compare rows of one run, not runs.",
        "",
        "| stage | ms | x realtime |",
        "|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        paths = make_track(Path(folder))
        stereo, _ = sf.read(paths["flac"], dtype="float32", always_2d=True)
        mono = resample.downmix(stereo)
        sinc_ratio = resample.essentia_ratio(RATE, 16000)
        stages = [
            ("decode MP3 (soundfile)", lambda: sf.read(paths["mp3"], dtype="float32", always_2d=True)),
            ("decode FLAC (soundfile)", lambda: sf.read(paths["flac"], dtype="float32", always_2d=True)),
            ("downmix before: mean over the channel axis", lambda: stereo.mean(axis=1, dtype=np.float32)),
            ("downmix now: maest.resample.downmix", lambda: resample.downmix(stereo)),
            ("resample soxr HQ", lambda: soxr.resample(mono, RATE, 16000, quality="HQ")),
            ("resample samplerate sinc_medium (libsamplerate)", lambda: samplerate.resample(mono, sinc_ratio, "sinc_medium")),
            ("resample maest sinc_medium (resampler='essentia')", lambda: resample.resample(mono, RATE, 16000, "essentia")),
            ("load FLAC before (decode + mean + soxr)", lambda: soxr.resample(
                sf.read(paths["flac"], dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32), RATE, 16000, quality="HQ")),
            ("load FLAC now, resampler='soxr'", lambda: audio.load(paths["flac"], resampler="soxr")),
            ("load FLAC now, resampler='essentia'", lambda: audio.load(paths["flac"], resampler="essentia")),
            ("load MP3 before (decode + mean + soxr)", lambda: soxr.resample(
                sf.read(paths["mp3"], dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32), RATE, 16000, quality="HQ")),
            ("load MP3 now, resampler='essentia'", lambda: audio.load(paths["mp3"], resampler="essentia")),
        ]
        if "mono_mp3" in paths:
            stages += [
                ("load 22.05 kHz mono MP3 before (decode + soxr)", lambda: soxr.resample(
                    sf.read(paths["mono_mp3"], dtype="float32")[0], 22050, 16000, quality="HQ")),
                ("load 22.05 kHz mono MP3 now, resampler='essentia'", lambda: audio.load(paths["mono_mp3"])),
            ]
        timings = {}
        for name, fn in stages:
            seconds = median_time(fn, args.repeats)
            timings[name] = seconds
            lines.append(f"| {name} | {seconds * 1e3:.1f} | {SECONDS / seconds:,.0f} |")
            print(lines[-1], flush=True)
        ours = timings["resample maest sinc_medium (resampler='essentia')"]
        load_now = timings["load FLAC now, resampler='essentia'"]
        lines += [
            "",
            f"maest sinc_medium vs soxr: {timings['resample soxr HQ'] / ours:.2f}x the speed; vs samplerate "
            f"(libsamplerate): {timings['resample samplerate sinc_medium (libsamplerate)'] / ours:.1f}x. "
            f"load FLAC now (essentia) vs before: {timings['load FLAC before (decode + mean + soxr)'] / load_now:.2f}x the speed.",
            "",
            "## Mel vs Essentia's file pipeline (all frames but the last five)",
            "",
            "Each resampler on the same decoded samples (maest.audio.load's decode and downmix); reference: "
            "`melspectrogram(path)` (Essentia's MonoLoader: FFmpeg decode, libsamplerate sinc_medium at "
            "its float32 ratio). MP3: Essentia decodes with FFmpeg's fixed-point mp3 decoder, soundfile "
            "with mpg123 (samples differ by up to 1 LSB of 16 bit), so MP3 rows include that decoder difference.",
            "",
            "| file | resampler | max abs | mean abs |",
            "|---|---|---|---|",
        ]
        files = [(f"{SECONDS} s 44.1 kHz {kind.upper()}", paths[kind]) for kind in ("flac", "mp3")]
        files += [(p.name, p) for p in sorted(CLIPS.glob("*")) if p.name in {
            "imperialarmy_20s_22k_mono.mp3", "techbattle_30s_44k_stereo.ogg", "temple_8s_48k_stereo.flac", "menu_0.5s_44k_stereo.wav"}]
        for label, path in files:
            reference = essentia_mel(path)
            decoded, rate = sf.read(path, dtype="float32", always_2d=True)
            decoded = resample.downmix(decoded)
            candidates = {
                "maest sinc_medium ('essentia')": resample.resample(decoded, rate, 16000, "essentia"),
                "soxr HQ ('soxr')": resample.resample(decoded, rate, 16000, "soxr"),
                "samplerate sinc_medium, exact ratio": samplerate.resample(decoded, 16000 / rate, "sinc_medium").astype(np.float32),
                "samplerate sinc_medium, float32 ratio": samplerate.resample(decoded, resample.essentia_ratio(rate, 16000), "sinc_medium").astype(np.float32),
            }
            for name, signal in candidates.items():
                largest, mean = mel_difference(signal, reference)
                lines.append(f"| {label} | {name} | {largest:.2e} | {mean:.2e} |")
                print(lines[-1], flush=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
