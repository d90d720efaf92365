"""The engines side by side (issue 19, item 4): Ray on one node vs the local engine, and a multi-node
Ray cluster on this machine surviving a killed worker node.

1. One node: the full-size 30 s architecture (random weights), block 7, batch 8, on the good clips of
   ../shared/data/audio copied ``--copies`` times. Interleaved rounds, each run in a fresh process:
   ``local`` (1 decode worker, torch on every core), ``ray`` (``RayEngine()``: its own loopback
   cluster, one actor on every core, as many torch threads) and ``ray-1-thread`` (``cpus_per_actor=1``,
   the former one-thread actor). Audio s/s from the run's summary; the cluster's start beside it.
2. Several nodes: ``ray.cluster_utils.Cluster`` on 127.0.0.1 (a head and ``--workers`` worker nodes of
   1 CPU each), two 1-CPU model actors on a small slow model; once the first tracks are written a
   worker node is killed (no graceful stop). The run must complete with every track written once and
   equal (1e-5) to the local engine's.

    python benchmarks/engines.py --rounds 2 --copies 4     # about 8 minutes on 2 shared cores
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

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "data" / "audio"
GOOD = ["ambience_12s_16k_mono.wav", "imperialarmy_20s_22k_mono.mp3", "menu_0.5s_44k_stereo.wav",
        "techbattle_30s_44k_stereo.ogg", "temple_8s_48k_stereo.flac"]
ARCH = "discogs-maest-30s-pw-129e"
RUNS = ("local", "ray", "ray-1-thread")


def build_model(seed: int = 0):
    import torch

    from maest.registry import architecture
    from maest.model import Maest

    torch.manual_seed(seed)
    return Maest(architecture(ARCH)).eval()


def engine_child(name: str, tracks: str, out: str) -> None:
    """Runs in a fresh process: one extraction, its numbers as JSON on the last line."""
    from maest.extraction import extract
    from maest.extraction.engines import LocalEngine
    from maest.inference import MaestPipeline

    pipeline = MaestPipeline(build_model(), "cpu", batch_size=8)
    if name == "local":
        engine, startup = LocalEngine(decode_workers=1), 0.0
    else:
        from maest.distributed import RayEngine

        engine = RayEngine(cpus_per_actor=1 if name == "ray-1-thread" else None)
        started = time.perf_counter()
        engine.placement("cpu", "fp32")  # starts the loopback cluster (timed apart from the run)
        startup = time.perf_counter() - started
    with engine:
        summary = extract([tracks], out, pipeline, blocks=7, progress=False, engine=engine)
        threads = engine.actor_cpus() if name != "local" else None
    print(json.dumps({"audio_seconds": summary.audio_seconds, "elapsed": summary.elapsed_seconds,
                      "succeeded": summary.succeeded, "startup": startup, "threads": threads}))


def run_child(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{args[:2]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_node(tmp: Path, copies: int, rounds: int) -> dict:
    tracks = tmp / "tracks"
    tracks.mkdir(parents=True)
    for copy in range(copies):
        for name in GOOD:
            shutil.copy(AUDIO / name, tracks / f"{copy}-{name}")
    results: dict[str, list[dict]] = {name: [] for name in RUNS}
    for round_ in range(rounds):
        for name in RUNS:
            result = run_child(["--engine-child", name, str(tracks), str(tmp / f"{name}-{round_}")])
            result["load"] = os.getloadavg()[0]
            results[name].append(result)
            print(name, round_, result, flush=True)
    return {"files": copies * len(GOOD), "runs": results}


def multi_node(tmp: Path, workers: int, tracks: int) -> dict:
    """A loopback cluster of a head and ``workers`` 1-CPU nodes; one worker node killed mid-run."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # this process's nodes on 127.0.0.1 (read at import)
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    import ray
    from ray.cluster_utils import Cluster

    from distributed_data import slow_model, write_clips
    from maest.distributed import RayEngine
    from maest.extraction import extract, read_table
    from maest.inference import MaestPipeline

    root = tmp / "music"
    write_clips(root, tracks, seconds=(2.0,))
    pipeline = MaestPipeline(slow_model(delay=1.0), "cpu")
    options = dict(blocks=2, output_format="parquet", per_segment=True, progress=False)
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(workers)]
    cluster.wait_for_nodes()
    startup = time.perf_counter() - started
    out = tmp / "ray"
    killed: dict = {}

    def actors_on(node) -> int:
        """Model actors running under ``node``'s raylet (Ray titles them after the class)."""
        raylet = node.all_processes["raylet"][0].process.pid
        count = 0
        for pid in tree(raylet):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            count += title.startswith("ray::") and ("TrackEmbedder" in title or "MapWorker" in title)
        return count

    def kill_a_worker_node() -> None:
        """Once the model actors compute (a few seconds after they start), kill a worker node holding one."""
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not any(actors_on(n) for n in nodes):
            time.sleep(0.2)
        time.sleep(3.0)
        victim = next((n for n in nodes if actors_on(n)), nodes[0])
        killed.update(node=victim.node_id, had_actor=bool(actors_on(victim)), at=time.perf_counter() - started)
        cluster.remove_node(victim, allow_graceful=False)

    try:
        with RayEngine(address=cluster.address, concurrency=2, cpus_per_actor=1) as engine:
            killer = threading.Thread(target=kill_a_worker_node, daemon=True)
            killer.start()
            run_started = time.perf_counter()
            summary = extract([root], out, pipeline, engine=engine, **options)
            elapsed = time.perf_counter() - run_started
            killer.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()
    keys, embeddings = read_table(out / "embeddings.parquet")
    reference = extract([root], tmp / "local", pipeline, **options)
    local_keys, local_embeddings = read_table(tmp / "local" / "embeddings.parquet")
    return {"tracks": tracks, "workers": workers, "startup": startup, "elapsed": elapsed, "killed": killed,
            "succeeded": summary.succeeded, "failed": summary.failed, "rows": len(keys), "unique": len(set(keys)),
            "same_keys": keys == local_keys and reference.succeeded == tracks,
            "max_abs_diff": float(np.abs(np.asarray(embeddings) - np.asarray(local_embeddings)).max())}


def tree(root: int) -> set[int]:
    """``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(
                    int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    found, todo = set(), [root]
    while todo:
        found.add(todo[-1])
        todo.extend(children.get(todo.pop(), []))
    return found


def report(one: dict | None, multi: dict | None, total: float) -> str:
    lines = ["## Engines after issue 19 item 4 (`python benchmarks/engines.py`)", ""]
    lines.append(f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average at the end "
                 f"{os.getloadavg()[0]:.1f}); torch threads of the Ray actor = the CPUs it reserves.")
    if one:
        lines += ["", f"### One node: {one['files']} files, {ARCH} random weights, block 7, batch 8, "
                  f"interleaved rounds", "",
                  "| engine | round | audio s/s | vs local (same round) | run (s) | Ray start (s) | actor threads | "
                  "load (1 min) |", "|---|---|---|---|---|---|---|---|"]
        for round_ in range(len(one["runs"]["local"])):
            local = one["runs"]["local"][round_]
            base = local["audio_seconds"] / local["elapsed"]
            for name in RUNS:
                r = one["runs"][name][round_]
                speed = r["audio_seconds"] / r["elapsed"]
                lines.append(f"| {name} | {round_ + 1} | {speed:.2f} | {speed / base:.2f} | {r['elapsed']:.1f} | "
                             f"{r['startup']:.1f} | {r['threads'] or '-'} | {r['load']:.1f} |")
        ratios = {name: [one["runs"][name][i]["audio_seconds"] / one["runs"][name][i]["elapsed"]
                         / (one["runs"]["local"][i]["audio_seconds"] / one["runs"]["local"][i]["elapsed"])
                         for i in range(len(one["runs"]["local"]))] for name in RUNS}
        lines += ["", "Median ratio to local: " + ", ".join(f"{n} {np.median(v):.2f}" for n, v in ratios.items())]
    if multi:
        k = multi["killed"]
        lines += ["", f"### Several nodes on this machine: a head + {multi['workers']} worker nodes (1 CPU each, "
                  "127.0.0.1), 2 model actors", "",
                  f"- {multi['tracks']} tracks (2 s, a 2-block model slowed to 1 s per batch, parquet); cluster "
                  f"start {multi['startup']:.1f} s, run {multi['elapsed']:.1f} s.",
                  f"- Killed worker node {k.get('node', '?')[:8]} (it held a model actor: {k.get('had_actor')}) "
                  f"{k.get('at', 0):.1f} s after the cluster began starting, without a graceful stop.",
                  f"- The run completed: {multi['succeeded']} succeeded, {multi['failed']} failed; the table has "
                  f"{multi['rows']} rows, {multi['unique']} distinct keys; same keys as the local engine: "
                  f"{multi['same_keys']}; largest difference to the local embeddings: {multi['max_abs_diff']:.2e}."]
    lines += ["", f"Total benchmark time: {total / 60:.1f} min."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="Worker nodes of the multi-node cluster.")
    parser.add_argument("--tracks", type=int, default=80, help="Tracks of the multi-node run.")
    parser.add_argument("--only", choices=("one-node", "multi-node"))
    parser.add_argument("--engine-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_child:
        engine_child(*args.engine_child)
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        one = one_node(Path(tmp) / "one", args.copies, args.rounds) if args.only != "multi-node" else None
        multi = multi_node(Path(tmp) / "multi", args.workers, args.tracks) if args.only != "one-node" else None
        print(json.dumps({"one": one, "multi": multi}, default=str), file=sys.stderr)
    print(report(one, multi, time.perf_counter() - started))


if __name__ == "__main__":
    main()
