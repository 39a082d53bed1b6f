"""Choosing a subset of a large scan: ``spread`` and ``groups`` on a million positions.

Each row times ``subset_indices`` in this process (numpy imported, the coordinates in
memory), median of ``--repeats``, beside one ``np.argsort`` of the same million x
coordinates in the same run, the cost of a single sort, as the baseline. The target is
at most 1 s per subset. Two scans: a 1000 x 1000 raster moved by up to 0.3 of a step
(every cell of the grid holds positions), and a ring (the cells inside and outside it
hold none, so the rest of the subset is filled farthest-first). ``groups`` has gridsize
2: groups of a seed and its 3 nearest neighbours.

    python benchmarks/bench_subsets.py                # 7 repeats, n = 64 and 1024
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from pytest_ptycho_fixture.subsets import COVERAGE_GRID, occupied_cells, subset_indices

POSITIONS = 1_000_000
TARGET_S = 1.0


def raster(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    side = np.arange(1000.0)
    gx, gy = np.meshgrid(side, side)
    return (
        (gx + rng.uniform(-0.3, 0.3, gx.shape)).ravel(),
        (gy + rng.uniform(-0.3, 0.3, gy.shape)).ravel(),
    )


def ring(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    angle = rng.uniform(0.0, 2.0 * np.pi, POSITIONS)
    radius = rng.uniform(400.0, 500.0, POSITIONS)
    return radius * np.cos(angle), radius * np.sin(angle)


def median_s(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", default="64,1024")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    scans = {"1000x1000 jittered raster": raster(rng), "ring, empty cells": ring(rng)}
    rows = []
    for name, (x, y) in scans.items():
        sort_s = median_s(partial(np.argsort, x), args.repeats)
        for n in (int(size) for size in args.sizes.split(",")):
            for strategy in ("spread", "groups", "stratified"):
                took = median_s(partial(subset_indices, strategy, x, y, n), args.repeats)
                cells = occupied_cells(x, y, subset_indices(strategy, x, y, n))
                met = "yes" if took <= TARGET_S else "**no**"
                rows.append(
                    f"| {name} | {strategy} | {n} | {took * 1e3:.1f} ms | {sort_s * 1e3:.1f} ms"
                    f" | {took / sort_s:.2f}x | {cells} of {COVERAGE_GRID**2} | {met} |"
                )
    print(
        f"\n{platform.python_implementation()} {platform.python_version()},"
        f" numpy {np.__version__}, {POSITIONS:,} positions, medians of {args.repeats}\n"
    )
    print("| scan | strategy | n | subset | one `np.argsort` | ratio | cells (8x8) | <= 1 s |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
