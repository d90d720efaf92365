"""Similarity index: build time, memory, query latency and recall@10 against exact search.

Synthetic 2304-d vectors (the size of a cls+dist+avg MAEST embedding), random (no structure: the
hard case for a graph index) and clustered (n/100 gaussian blobs, like albums/styles); sizes 10^4
and 10^5 (HNSW builds at 10^5: clustered only), and, with ``--million``, 10^6 with PCA-256 float16
(2304-d float32 would be 9.2 GB). Exact search = numpy
float32 / faiss float16 through :mod:`maest.index`; approximate = faiss HNSW (maest.index) and usearch HNSW
(same M / ef, 10^4 only: its builds are slower) for the library choice. Exact latency at growing sizes gives the auto threshold.
Run: python benchmarks/index.py [--million] [--queries 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from maest import index as mi
from maest.index import vectors as iv

RESULTS = Path(__file__).resolve().parent / "results" / "index.md"
DIMS = 2304
K = 10


def make_data(n: int, kind: str, seed: int, dims: int = DIMS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, dims), dtype=np.float32)
    if kind == "clustered":  # noise as strong as the centre: within-cluster cosine ~0.5, between ~0
        centres = rng.standard_normal((max(n // 100, 1), dims), dtype=np.float32)
        data += centres[rng.integers(0, len(centres), n)]
    return iv.normalise(data)


def ground_truth(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = queries @ data.T
    return np.argsort(-scores, axis=1)[:, :K]


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))


def timed_queries(search, queries: np.ndarray) -> tuple[float, list[list[int]]]:
    """Mean latency (ms) of one query at a time (a user's `similar`), and the rows found."""
    search(queries[0])  # warm-up
    started = time.perf_counter()
    found = [search(q) for q in queries]
    return (time.perf_counter() - started) / len(queries) * 1e3, found


def bench_maest(data: np.ndarray, queries: np.ndarray, truth: np.ndarray, folder: Path, **options) -> dict:
    keys = [str(i) for i in range(len(data))]
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    info = mi.build_index(mi.EmbeddingSet(keys, data), folder, **options)
    build = time.perf_counter() - started
    index = mi.load(folder)
    latency, found = timed_queries(lambda q: [int(k) for k, _ in index.search(q, k=K)], queries)
    shutil.rmtree(folder, ignore_errors=True)
    return {"build_s": build, "mib": info.memory_bytes / 2**20, "ms": latency, "recall": recall(found, truth),
            "kind": info.kind, "pca": info.pca_explained_variance}


def bench_usearch(data: np.ndarray, queries: np.ndarray, truth: np.ndarray, dtype: str = "f32") -> dict:
    from usearch.index import Index

    started = time.perf_counter()
    index = Index(ndim=data.shape[1], metric="ip", dtype=dtype, connectivity=iv.HNSW_M,
                  expansion_add=iv.EF_CONSTRUCTION, expansion_search=iv.EF_SEARCH)
    index.add(np.arange(len(data)), data)
    build = time.perf_counter() - started
    latency, found = timed_queries(lambda q: [int(k) for k in index.search(q, K).keys], queries)
    return {"build_s": build, "mib": index.memory_usage / 2**20, "ms": latency, "recall": recall(found, truth),
            "kind": "approximate", "pca": None}


def exact_latency_curve(sizes: list[int], queries: int) -> list[tuple[int, float, float]]:
    """Exact search latency (faiss flat, numpy matvec) per single query as the collection grows."""
    import faiss

    rows = []
    data = make_data(max(sizes), "random", seed=9)
    probe = data[:queries] + 0.01
    for n in sizes:
        flat = faiss.IndexFlatIP(DIMS)
        flat.add(data[:n])
        ms_faiss, _ = timed_queries(lambda q: flat.search(q[None], K), probe)
        ms_numpy, _ = timed_queries(lambda q: np.argpartition(-(data[:n] @ q), K)[:K], probe)
        rows.append((n, ms_faiss, ms_numpy))
    return rows


NOTES = [
    "## Reading", "",
    "- **Library: faiss.** At the same M/efConstruction/efSearch, faiss's HNSW built 1.8-2.6x faster "
    "than usearch's (10^4 random: 80 vs 143 s; clustered: 18 vs 46 s, under this run's load; idle, on "
    "20,000 clustered vectors: 3.7 vs 16 s), used 30 % less memory (90 vs 128 MiB) at equal recall "
    "(0.705 vs 0.702 random, 1.000 vs 0.999 clustered). faiss also gives exact float16 search "
    "(SQfp16) with the same file format.",
    "- **Exact vs HNSW.** Exact latency grows linearly (25 -> 242 ms from 10^4 to 10^5 in the curve "
    "above); HNSW stayed near-flat (0.63 -> 1.84 ms clustered) at recall 1.000, 44x faster than "
    "exact at 10^5. HNSW's price is the build (10^5 x 2304: 554 s under load 8-11; idle, 20,000 "
    "took 3.7 s) and ~3 % more memory. On structureless random vectors recall is ~0.70: the "
    "ground-truth neighbours beyond the query's own source are noise-level ties.",
    "- **float16** halves memory at recall >= 0.998 (ties reordered by rounding); its exact search "
    "is no faster than numpy's float32 (faiss scans it on one core).",
    "- **PCA-256 float16** cuts memory 12x (75 vs 905 MiB at 10^5) but on these synthetic sets "
    "(isotropic noise in all 2304 dims, 1000 centres) it keeps only 21-59 % of the variance and "
    "recall@10 drops to 0.16-0.37: neighbours within a cluster are decided by the discarded "
    "dims. The test suite checks that cluster membership survives PCA; check the explained variance "
    "(`info.pca_explained_variance`) on real embeddings before choosing it.", "",
]


def threshold_text(curve: list[tuple[int, float, float]]) -> str:
    """How ``EXACT_MAX_VALUES`` follows from the curve: where numpy exact search reaches 10 ms."""
    per_vector = np.polyfit([n for n, _, _ in curve], [b for _, _, b in curve], 1)[0]
    return (f"Exact search is linear in the collection: {per_vector * 1e3:.2f} ms per 1000 vectors in this run, "
            f"so 10 ms a query at ~{10 / per_vector:,.0f} vectors under this run's load. On the same machine "
            "idle (load 1.9; a probe before this run) numpy took 4.9 ms at 10^4 and 26 ms at 5x10^4 "
            "(~0.5 ms per 1000), i.e. 10 ms at ~20,000 vectors: `kind=\"auto\"` stays exact up to 20,000 x "
            "2304 stored values (`maest.index.EXACT_MAX_VALUES`). Beyond it exact latency keeps growing "
            "linearly while HNSW stays at a few ms (table below) for a one-off build. faiss's flat index is "
            "slower than numpy for one query (it parallelises over queries, so one query uses one core), "
            "hence numpy for exact float32.")


def million(queries: int, folder: Path, n: int = 1_000_000, pca_dims: int = 256) -> dict:
    """10^6 clustered vectors: generated in chunks, projected with a PCA fitted on the first 50,000."""
    chunk = min(50_000, n)
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((n // 100, DIMS), dtype=np.float32)
    started = time.perf_counter()
    fit = None
    projected = np.empty((n, pca_dims), np.float32)
    for start in range(0, n, chunk):
        block = rng.standard_normal((chunk, DIMS), dtype=np.float32) + centres[rng.integers(0, len(centres), chunk)]
        block = iv.normalise(block)
        if fit is None:
            fit = iv.Pca.fit(block, pca_dims)
        projected[start:start + chunk] = fit.apply(block)
    generate = time.perf_counter() - started
    projected = iv.normalise(projected)
    query_rows = np.random.default_rng(4).choice(n, queries, replace=False)
    probe = projected[query_rows]
    truth = ground_truth(projected, probe)
    out = {"generate_s": generate, "explained": fit.explained}
    for kind in ("exact", "approximate"):
        out[kind] = bench_maest(projected, probe, truth, folder, kind=kind, dtype="float16")
    return out


def fmt_row(n: int, data: str, what: str, r: dict) -> str:
    return (f"| {n:,} | {data} | {what} | {r['build_s']:.1f} | {r['mib']:.0f} | {r['ms']:.2f} | {r['recall']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--million", action="store_true", help="add the 10^6 PCA-256 float16 run (long HNSW build)")
    parser.add_argument("--sizes", default="10000,100000", help="collection sizes (comma-separated)")
    parser.add_argument("--million-n", type=int, default=1_000_000, help="size of the PCA-256 float16 run")
    parser.add_argument("--usearch-max", type=int, default=10_000, help="largest size usearch is built at")
    args = parser.parse_args()
    import faiss
    import usearch

    total = time.perf_counter()
    load_start = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="maest-index-bench-")) / "ix"
    curve = exact_latency_curve([10_000, 20_000, 50_000, 100_000], args.queries)
    print("exact latency", curve, flush=True)
    rows, results = [], []
    for n in [int(x) for x in args.sizes.split(",")]:
        for data_kind in ("random", "clustered"):
            data = make_data(n, data_kind, seed=n + len(data_kind))
            # queries: stored tracks, lightly perturbed (a new recording of a known piece)
            probe = iv.normalise(data[np.random.default_rng(1).choice(n, args.queries, replace=False)] + 0.01)
            truth = ground_truth(data, probe)
            big_n = n >= 100_000
            runs = {"exact float32 (numpy)": dict(kind="exact"),
                    "exact float16 (faiss SQfp16)": dict(kind="exact", dtype="float16")}
            if not (big_n and data_kind == "random"):  # 10^5 HNSW builds: clustered only (time budget)
                runs["HNSW float32 (faiss)"] = dict(kind="approximate")
                runs["HNSW PCA-256 float16 (faiss)"] = dict(kind="approximate", pca_dims=256, dtype="float16")
            for what, options in runs.items():
                result = bench_maest(data, probe, truth, folder, **options)
                if result["pca"] is not None:
                    what += f", {result['pca']:.0%} var."
                rows.append(fmt_row(n, data_kind, what, result))
                results.append((n, data_kind, what, result))
                print(rows[-1], flush=True)
            if n <= args.usearch_max:
                rows.append(fmt_row(n, data_kind, "HNSW float32 (usearch)", bench_usearch(data, probe, truth)))
                print(rows[-1], flush=True)
            del data
    big = million(args.queries, folder, args.million_n) if args.million else None
    print("million", big, flush=True)
    shutil.rmtree(folder.parent, ignore_errors=True)
    elapsed = time.perf_counter() - total

    lines = [
        "# Similarity index benchmark", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other work: compare ratios within "
        f"this run), faiss-cpu {faiss.__version__} ({faiss.omp_get_max_threads()} threads), usearch "
        f"{usearch.__version__}. Script: `benchmarks/index.py` ({args.queries} queries per row, one at a time; "
        f"whole run {elapsed / 60:.1f} min; load average {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end).", "",
        f"Vectors: {DIMS}-d, unit length. random: i.i.d. gaussian; clustered: n/100 gaussian centres + "
        "noise of the same scale. Queries: stored vectors plus small noise. Recall@10: overlap of the top 10 "
        "with exact (float32, full-dimension) search. Memory: size of the stored faiss structure "
        "(`vectors.npy`/`vectors.faiss`, what a loaded index holds); build includes writing it. HNSW: M=32, "
        "efConstruction=80, efSearch=64 for both libraries.", "",
        "## Exact search latency vs size (the auto threshold)", "",
        "| vectors | faiss flat ms/query | numpy matvec ms/query |", "|---|---|---|",
        *[f"| {n:,} | {a:.2f} | {b:.2f} |" for n, a, b in curve], "",
        threshold_text(curve), "",
        "## Build, memory, latency, recall@10", "",
        "| vectors | data | index | build s | MiB | ms/query | recall@10 |", "|---|---|---|---|---|---|---|",
        *rows, "",
    ]
    if big:
        lines += [
            "## 10^6 clustered vectors, PCA-256 float16", "",
            f"Generated in 50,000-vector chunks and projected with a PCA fitted on the first chunk "
            f"({big['explained']:.0%} of the variance), {big['generate_s']:.0f} s; 2304-d float32 would be "
            "9.2 GB, more than this machine can spare. Recall here is against exact search on the same "
            "projected vectors.", "",
            "| index | build s | MiB | ms/query | recall@10 |", "|---|---|---|---|---|",
            *[f"| {kind} | {r['build_s']:.1f} | {r['mib']:.0f} | {r['ms']:.2f} | {r['recall']:.3f} |"
              for kind, r in ((k, big[k]) for k in ("exact", "approximate"))], "",
        ]
    else:
        hnsw = [r for r in results if r[0] == max(r[0] for r in results) and r[2] == "HNSW float32 (faiss)"]
        rate = f" (the 10^5 HNSW build above took {hnsw[0][3]['build_s']:.0f} s)" if hnsw else ""
        lines += [
            "## 10^6 vectors: not run by default (`--million` runs it)", "",
            "10^6 x 2304 float32 is 9.2 GB (float16 4.6 GB), more than this shared machine can spare. With "
            "PCA-256 float16 the index would take ~0.5 GB, but an HNSW build grows a little faster than "
            f"linearly{rate}, so 10^6 would take more than ten times as long: beyond the ~10-minute budget "
            "of this benchmark on 2 shared cores.", ""]
    lines += NOTES
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
