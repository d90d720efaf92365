"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, after one untimed warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(runs: Sequence[Callable[[], object]], repeats: int, verbose: bool = False) -> list[float]:
    """Median wall time per run; the runs take turns in every round (after an untimed warm-up round),
    so load changes on a shared machine hit all of them alike."""
    times: list[list[float]] = [[] for _ in runs]
    for round_ in range(repeats + 1):
        for index, run in enumerate(runs):
            start = time.perf_counter()
            run()
            if round_:
                times[index].append(time.perf_counter() - start)
        if verbose:
            print(f"round {round_}/{repeats} done", flush=True)
    return [statistics.median(t) for t in times]
