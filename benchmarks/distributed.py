"""Local engine vs the Ray engine on this machine, per-stage costs, and a projected cluster throughput.

Full-size 30 s architecture (discogs-maest-30s-pw-129e) with random weights, block 7, batch 8.
1. Engines: ``maest.extract`` (local: 1 decode worker, torch 2 threads) and ``maest.distributed.extract_ray``
   with 1 and 2 CPU model actors (one torch thread each, as Ray gives one CPU per actor) on the same
   tracks (the good clips of ../shared/data/audio, copied ``--copies`` times), each in a fresh process;
   audio s/s from the run's summary, peak RSS summed over the process tree (driver, Ray's raylet,
   GCS and workers) sampled every 0.2 s.
2. Per-stage costs on one core: decoding per format (``maest.audio.load`` to 16 kHz mono), the mel,
   and the model per segment (full size, batch 2) at fp32 and bf16 on the CPU.
3. From them, a projection of a cluster of N CPU nodes + M GPUs (formula and assumptions in the output).
4. Memory of one long track (``--long-minutes``, 40) through Ray: its mel shipped as float32 vs decoded in the actor.
5. On a machine with CUDA, GPU segments/s and audio s/s per precision (fp32, bf16, fp16) and cosine vs fp32.

    python benchmarks/distributed.py            # about 6-10 minutes on 2 shared cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# This machine's local Ray clusters listen on 127.0.0.1 only (read by Ray at import; inherited by the
# engine runs started in subprocesses).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "data" / "audio"
GOOD = ["ambience_12s_16k_mono.wav", "imperialarmy_20s_22k_mono.mp3", "menu_0.5s_44k_stereo.wav",
        "techbattle_30s_44k_stereo.ogg", "temple_8s_48k_stereo.flac"]
ARCH = "discogs-maest-30s-pw-129e"
HOP_SECONDS = 15.0  # audio seconds per segment of a long track: 30 s segments at 50 % overlap
NODE_CORES = 16  # ASSUMPTION: cores per CPU node of the projected cluster
GPU_TFLOPS = 100.0  # ASSUMPTION: sustained bf16 TFLOP/s of one data-centre GPU (~1/3 of an A100/H100 peak)
ENGINES = {"local": ("local", 0, 2), "ray-1": ("ray", 1, 2), "ray-2": ("ray", 2, 3)}  # engine, actors, Ray CPUs


def build_model(seed: int = 0):
    import torch

    from maest.registry import architecture
    from maest.model import Maest

    torch.manual_seed(seed)
    return Maest(architecture(ARCH)).eval()


# -- 1. engines ----------------------------------------------------------------------------------------
def engine_child(name: str, tracks: str, out: str) -> None:
    """Runs in a fresh process: one extraction, its summary as JSON on the last line."""
    import torch

    from maest.inference import MaestPipeline

    engine, actors, cpus = ENGINES[name]
    pipeline = MaestPipeline(build_model(), "cpu", batch_size=8)
    started = time.perf_counter()
    if engine == "local":
        from maest.extraction import extract

        torch.set_num_threads(2)
        summary = extract([tracks], out, pipeline, blocks=7, workers=1, progress=False)
        startup = 0.0
    else:
        import ray

        from maest.distributed import extract_ray

        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - started
        summary = extract_ray([tracks], out, pipeline, blocks=7, concurrency=actors, progress=False)
    print(json.dumps({"audio_seconds": summary.audio_seconds, "elapsed": summary.elapsed_seconds,
                      "succeeded": summary.succeeded, "startup": startup}))


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total / 2**20


def run_engine(name: str, tracks: Path, out: Path, child: str = "--engine-child") -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, __file__, child, name, str(tracks), str(out)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = [0.0]

    def sample():
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed ({process.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = peak[0]
    return result


def long_child(mode: str, path: str, out: str) -> None:
    """Runs in a fresh process: one long track through Ray, its mel shipped from the decode task as
    float32 (``shipped``) or decoded in the actor (``actor``). A small 2-block model: memory, not speed."""
    import ray
    import torch

    from maest.configs import MaestConfig
    from maest.distributed import extract_ray
    from maest.inference import MaestPipeline
    from maest.model import Maest

    torch.manual_seed(0)
    model = Maest(MaestConfig(depth=2, width=64, heads=2, num_classes=4, segment_frames=1875, name="small"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    summary = extract_ray([path], out, MaestPipeline(model, "cpu"), blocks=2, progress=False,
                          actor_decode_seconds=None if mode == "shipped" else 60.0)
    print(json.dumps({"audio_seconds": summary.audio_seconds, "elapsed": summary.elapsed_seconds,
                      "succeeded": summary.succeeded, "startup": 0.0}))


def long_track(tmp: Path, minutes: int) -> dict:
    """Peak RSS of the whole Ray process tree for one ``minutes``-long 16 kHz track, both ways."""
    import soundfile as sf

    path = tmp / "long.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", 16000, 1, "PCM_16") as f:
        for _ in range(minutes):
            f.write((0.1 * rng.standard_normal(16000 * 60)).astype(np.float32))
    return {mode: run_engine(mode, path, tmp / f"long-{mode}", child="--long-child") for mode in ("shipped", "actor")}


# -- 2. stages -----------------------------------------------------------------------------------------
def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def stage_costs() -> dict:
    """Realtime factors of decoding (per file) and mel, and seconds per segment of the model, on one core."""
    import torch

    from maest import audio
    from maest.inference import EmbedOptions, MaestPipeline

    torch.set_num_threads(1)
    decode = {}
    for name in GOOD:
        path = AUDIO / name
        seconds = audio.info(path).frames / audio.info(path).sample_rate
        decode[name] = seconds / best_of(lambda: audio.load(path, 16000))
    waveform = (0.1 * np.random.default_rng(0).standard_normal(16000 * 120)).astype(np.float32)
    pipeline = MaestPipeline(build_model(), "cpu", batch_size=2)
    mel_rate = 120.0 / best_of(lambda: pipeline.mel(waveform))
    mel, _ = pipeline.mel(waveform)
    batch = torch.stack([mel[:, :1875], mel[:, 1875:3750]])
    model = {}
    outputs = {}
    for precision in ("fp32", "bf16"):
        run = MaestPipeline(pipeline.model, "cpu", batch_size=2, precision=precision).embedder(
            EmbedOptions(blocks=7))
        model[precision] = best_of(lambda: outputs.__setitem__(precision, run(batch)), repeats=2) / len(batch)
    cosine = {p: float(np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b)
                                for a, b in zip(outputs[p], outputs["fp32"])])) for p in outputs}
    flops = segment_flops(pipeline.config)
    return {"decode": decode, "mel": mel_rate, "model": model, "cosine": cosine, "flops": flops}


def cpu_features() -> str:
    """The vector extensions that matter for fp32 / bf16 speed, from /proc/cpuinfo."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown vector extensions"
    found = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in flags]
    return ", ".join(found) or "none of avx2, avx512, amx"


def segment_flops(config, blocks: int = 7) -> float:
    """Multiply-adds x2 of one full segment through ``blocks`` blocks (linear layers + attention)."""
    tokens = config.conv_freq_rows() * config.conv_time_columns(config.segment_frames) + 2  # + cls, dist
    d = config.width
    return blocks * (24 * tokens * d * d + 4 * tokens * tokens * d)


# -- 4. GPU ---------------------------------------------------------------------------------------------
def gpu_precisions() -> dict | None:
    """Segments/s per precision on CUDA (batch 32, block 7) and cosine vs fp32; None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    from maest.inference import EmbedOptions, MaestPipeline

    model = build_model()
    batch = torch.randn(32, 96, 1875)
    results, outputs = {}, {}
    for precision in ("fp32", "bf16", "fp16"):
        try:
            run = MaestPipeline(model, "cuda", batch_size=32, precision=precision).embedder(EmbedOptions(blocks=7))
        except ValueError as error:
            results[precision] = str(error)
            continue
        run(batch)
        torch.cuda.synchronize()
        elapsed = best_of(lambda: (outputs.__setitem__(precision, run(batch)), torch.cuda.synchronize()), repeats=5)
        results[precision] = len(batch) / elapsed
    cosine = {p: float(np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(o, outputs["fp32"])]))
              for p, o in outputs.items()}
    return {"segments_per_s": results, "cosine": cosine, "device": torch.cuda.get_device_name()}


# -- 3. report ------------------------------------------------------------------------------------------
def long_section(long: dict | None, minutes: int) -> list[str]:
    if not long:
        return []
    mel_mb = 96 * minutes * 60 * 62.5 * 4 / 2**20
    return [
        f"## One {minutes}-minute track through Ray (memory)",
        "",
        f"A {minutes}-minute 16 kHz WAV, a 2-block model (memory, not speed), 2 Ray CPUs; peak RSS summed over "
        f"the driver, Ray's daemons and workers. Its float32 mel is {mel_mb:.0f} MB.",
        "",
        "| mel path | peak RSS, all processes (MB) | run (s) |",
        "|---|---|---|",
        f"| shipped from the decode task through the object store | {long['shipped']['peak_rss_mb']:.0f} | "
        f"{long['shipped']['elapsed']:.1f} |",
        f"| decoded in the actor (tracks over `actor_decode_seconds`, default 30 min) | "
        f"{long['actor']['peak_rss_mb']:.0f} | {long['actor']['elapsed']:.1f} |",
        "",
        "Shipping the mel costs its bytes several times over (the task's output block, the object store, "
        "the actor's copy); decoding in the actor holds it once, in chunks as it is computed. float16 "
        "mels would halve the shipped bytes but change the embeddings by more than the 1e-5 the engines "
        "agree to, so maest keeps float32 and decodes tracks over 30 minutes in the actor.",
        "",
    ]


def report(engines: dict, stages: dict, gpu: dict | None, audio_seconds: float, files: int, total: float,
           long: dict | None = None, minutes: int = 40) -> str:
    import torch

    load = os.getloadavg()
    local = engines["local"]["audio_seconds"] / engines["local"]["elapsed"]
    lines = [
        "# Scaling out: local engine vs Ray, per-stage costs, projected cluster throughput",
        "",
        f"`python benchmarks/distributed.py`: {ARCH} (ViT-B, 30 s segments), random weights, block 7, batch 8, "
        f"torch {torch.__version__}, {platform.machine()} ({os.cpu_count()} cores, shared with other jobs; load "
        f"average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}). One run of each: compare the ratios, "
        "not the absolute numbers.",
        "",
        f"## Engines on this machine ({files} files, {audio_seconds:.0f} s of audio)",
        "",
        "| engine | audio s/s | vs local | run (s) | Ray start (s) | peak RSS, all processes (MB) |",
        "|---|---|---|---|---|---|",
    ]
    labels = {"local": "local (1 decode worker, torch 2 threads)", "ray-1": "Ray, 1 CPU actor (Ray CPUs: 2)",
              "ray-2": "Ray, 2 CPU actors (Ray CPUs: 3)"}
    for name, result in engines.items():
        speed = result["audio_seconds"] / result["elapsed"]
        lines.append(f"| {labels[name]} | {speed:.2f} | {speed / local:.2f} | {result['elapsed']:.1f} | "
                     f"{result['startup']:.1f} | {result['peak_rss_mb']:.0f} |")
    lines += [
        "",
        "Run time is the summary's (listing, settings, model actors starting, decoding, model, writing); the "
        "Ray cluster's own start is beside it. On 2 cores Ray pays for its actor start (a process importing "
        "torch, the model shipped through the object store) and its daemons' memory (raylet, GCS, a worker "
        "per task), and each actor runs one torch thread where the local engine runs two. On a busy machine "
        "(load above the core count) one thread per process can beat two threads of one process, whose "
        "OpenMP workers wait for each other whenever one is descheduled: read these ratios with the load "
        "average above. Ray is for more cores and machines than this one has.",
        "",
        "## Per-stage costs, one core",
        "",
        "| stage | cost |",
        "|---|---|",
    ]
    for name, rate in stages["decode"].items():
        lines.append(f"| decode {name} (to 16 kHz mono) | {rate:.0f}x realtime |")
    lines.append(f"| mel (120 s, normalised, chunked) | {stages['mel']:.0f}x realtime |")
    for precision, seconds in stages["model"].items():
        lines.append(f"| model, block 7, one 30 s segment, {precision} | {seconds:.2f} s "
                     f"({HOP_SECONDS / seconds:.1f} audio s/s at 15 s per segment) |")
    lines += [
        "",
        "Cosine to fp32 on these random-weight segments: " + ", ".join(
            f"{p} {c:.4f}" for p, c in stages["cosine"].items() if p != "fp32")
        + " (int8 is not offered: see int8.md). This CPU "
        f"has {cpu_features()}: bf16 autocast uses native bf16 dot products where a CPU has avx512_bf16 or AMX, "
        "and is slower than fp32 where it has neither.",
        "",
    ]
    decode_rate = len(stages["decode"]) / sum(1 / r for r in stages["decode"].values())  # harmonic mean
    front = 1 / (1 / decode_rate + 1 / stages["mel"])
    gpu_segments = GPU_TFLOPS * 1e12 / stages["flops"]
    if gpu and isinstance(gpu["segments_per_s"].get("bf16"), float):
        gpu_segments = gpu["segments_per_s"]["bf16"]
        gpu_note = f"measured on {gpu['device']} at bf16"
    else:
        gpu_note = (f"**assumed**: {stages['flops'] / 1e9:.0f} GFLOP per segment (block 7) at {GPU_TFLOPS:.0f} "
                    "TFLOP/s sustained bf16 (about a third of an A100/H100 peak); not measured")
    gpu_audio = gpu_segments * HOP_SECONDS
    cpu_model = {p: HOP_SECONDS / s for p, s in stages["model"].items()}
    lines += [
        "## Projection (not measured): N CPU nodes + M GPUs",
        "",
        f"Per core: decode + mel D = 1 / (1/decode + 1/mel) = {front:.0f} audio s/s (decode: harmonic mean over "
        f"the formats above, {decode_rate:.0f}x); model on a CPU core Mc = 15 s / (s per segment) = "
        f"{cpu_model['fp32']:.1f} (fp32), {cpu_model['bf16']:.1f} (bf16) audio s/s; model on one GPU "
        f"Mg = 15 s x segments/s = {gpu_audio:.0f} audio s/s ({gpu_segments:.0f} segments/s, {gpu_note}). "
        f"Nodes of C = {NODE_CORES} cores (**assumed**). Long tracks (15 s of audio per segment); Ray's "
        "overheads and the network are ignored.",
        "",
        "- M = 0: throughput = N C / (1/D + 1/Mc)  (every core decodes and runs the model)",
        "- M > 0: throughput = min(N C D, M Mg)  (CPU cores decode, GPUs run the model); cores needed per GPU = Mg / D",
        "",
        "| N nodes | M GPUs | audio s/s (fp32 CPU) | audio s/s (bf16 CPU) | days for 10^7 tracks of 4 min (fp32) |",
        "|---|---|---|---|---|",
    ]
    for n in (1, 4, 16):
        for m in (0, 1, 4):
            if m == 0:
                fp32 = n * NODE_CORES / (1 / front + 1 / cpu_model["fp32"])
                bf16 = n * NODE_CORES / (1 / front + 1 / cpu_model["bf16"])
            else:
                fp32 = bf16 = min(n * NODE_CORES * front, m * gpu_audio)
            days = 1e7 * 240 / fp32 / 86400
            lines.append(f"| {n} | {m} | {fp32:,.0f} | {bf16:,.0f} | {days:,.1f} |")
    lines += ["", f"Cores needed to feed one GPU: {gpu_audio / front:.0f}.", "", "## GPU precisions", ""]
    if gpu is None:
        lines.append("Not run: this machine has no GPU. On one with CUDA this script measures segments/s and "
                     "audio s/s per precision (fp32, bf16, fp16; batch 32, block 7) and their cosine to fp32.")
    else:
        lines += [f"{gpu['device']}, batch 32, block 7:", "", "| precision | segments/s | audio s/s | cosine vs fp32 |",
                  "|---|---|---|---|"]
        for p, value in gpu["segments_per_s"].items():
            if isinstance(value, float):
                lines.append(f"| {p} | {value:.1f} | {value * HOP_SECONDS:.0f} | {gpu['cosine'].get(p, 1.0):.5f} |")
            else:
                lines.append(f"| {p} | refused: {value} | | |")
    lines += [""] + long_section(long, minutes)
    lines += [f"Total benchmark time: {total / 60:.1f} min.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=4, help="Copies of each good clip in the engine runs.")
    parser.add_argument("--long-minutes", type=int, default=40, help="Length of the long track (memory check).")
    parser.add_argument("--long-only", action="store_true", help="Only the long-track memory check (printed).")
    parser.add_argument("--engine-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--long-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    if args.engine_child:
        engine_child(*args.engine_child)
        return
    if args.long_child:
        long_child(*args.long_child)
        return
    if args.long_only:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(long_track(Path(tmp), args.long_minutes)))
        return
    started = time.perf_counter()
    stages = stage_costs()
    print(json.dumps(stages, indent=1), flush=True)
    gpu = gpu_precisions()
    engines = {}
    with tempfile.TemporaryDirectory() as tmp:
        tracks = Path(tmp) / "tracks"
        for copy in range(args.copies):
            (tracks / f"c{copy}").mkdir(parents=True)
            for name in GOOD:
                shutil.copy(AUDIO / name, tracks / f"c{copy}" / name)
        for name in ENGINES:
            engines[name] = run_engine(name, tracks, Path(tmp) / name)
            print(name, engines[name], flush=True)
        long = long_track(Path(tmp), args.long_minutes)
        print("long", long, flush=True)
    audio_seconds = engines["local"]["audio_seconds"]
    text = report(engines, stages, gpu, audio_seconds, len(GOOD) * args.copies, time.perf_counter() - started,
                  long, args.long_minutes)
    out = ROOT / "benchmarks" / "results" / "distributed.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
