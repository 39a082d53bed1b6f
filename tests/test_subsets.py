"""The subset rules: ``spread`` covers the scan in two dimensions, exactly as stated."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import run1084_shaped_scan, run_cli, write_run1084_shaped_source
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.simulate import synthetic_scan
from pytest_ptycho_fixture.subsets import occupied_cells, spread, subset_indices


def _reference_spread(xs: list[float], ys: list[float], n: int) -> list[int]:
    """The README's rule for ``spread``, one position at a time, in plain Python."""
    g = math.isqrt(n)
    x_low, y_low = min(xs), min(ys)
    x_span, y_span = max(xs) - x_low, max(ys) - y_low

    def cell(value: float, low: float, span: float) -> int:
        return 0 if span == 0 else min(math.floor((value - low) * g / span), g - 1)

    best: dict[tuple[int, int], tuple[float, int]] = {}
    for i, (x, y) in enumerate(zip(xs, ys)):
        cx, cy = cell(x, x_low, x_span), cell(y, y_low, y_span)
        dx = x - (x_low + (cx + 0.5) * x_span / g)
        dy = y - (y_low + (cy + 0.5) * y_span / g)
        key = (dx * dx + dy * dy, i)
        if (cy, cx) not in best or key < best[(cy, cx)]:
            best[(cy, cx)] = key
    kept = [i for _, i in best.values()]
    while len(kept) < n:
        farthest = max(
            (i for i in range(len(xs)) if i not in kept),
            key=lambda i: (
                min((xs[i] - xs[k]) ** 2 + (ys[i] - ys[k]) ** 2 for k in kept),
                -i,
            ),
        )
        kept.append(farthest)
    return sorted(kept)


@pytest.mark.parametrize("scan", ["built-in", "Run1084-shaped"])
def test_spread_fills_at_least_56_of_64_cells_where_stratified_leaves_stripes(scan: str) -> None:
    if scan == "built-in":
        built_in = synthetic_scan()
        x, y = built_in.xcoords, built_in.ycoords
    else:
        x, y = run1084_shaped_scan()
    spread_cells = occupied_cells(x, y, subset_indices("spread", x, y, 64))
    stratified_cells = occupied_cells(x, y, subset_indices("stratified", x, y, 64))
    assert spread_cells >= 56
    assert stratified_cells < 32, "the stratified subset covered the scan: the rule changed"


@settings(max_examples=150, deadline=None)
@given(
    points=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=60),
    data=st.data(),
)
def test_spread_follows_the_stated_rule_ties_holes_and_duplicates_included(
    points: list[tuple[int, int]], data: st.DataObject
) -> None:
    # Small integer coordinates make equal distances, equal positions and empty cells common.
    n = data.draw(st.integers(1, len(points)))
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    assert spread(np.array(xs), np.array(ys), n) == _reference_spread(xs, ys, n)


def _spread_over_every_position(
    x: NDArray[np.float64], y: NDArray[np.float64], n: int
) -> list[int]:
    """The rule with numpy, every position updated for every pick: no grid search."""
    g = math.isqrt(n)
    x_low, y_low = x.min(), y.min()
    x_span, y_span = x.max() - x_low, y.max() - y_low
    cx = np.minimum(np.floor((x - x_low) * g / x_span).astype(np.int64), g - 1)
    cy = np.minimum(np.floor((y - y_low) * g / y_span).astype(np.int64), g - 1)
    dx = x - (x_low + (cx + 0.5) * x_span / g)
    dy = y - (y_low + (cy + 0.5) * y_span / g)
    order = np.lexsort((np.arange(x.size), dx * dx + dy * dy, cy * g + cx))
    cells = (cy * g + cx)[order]
    kept = list(order[np.r_[True, cells[1:] != cells[:-1]]])
    nearest = np.full(x.size, np.inf)
    for i in kept:
        nearest = np.minimum(nearest, (x - x[i]) ** 2 + (y - y[i]) ** 2)
    nearest[kept] = -1.0
    while len(kept) < n:
        pick = int(np.argmax(nearest))
        kept.append(pick)
        nearest = np.minimum(nearest, (x - x[pick]) ** 2 + (y - y[pick]) ** 2)
        nearest[pick] = -1.0
    return sorted(int(i) for i in kept)


@pytest.mark.parametrize("n", [64, 400, 1024])
def test_spread_on_a_large_scan_with_holes_matches_the_rule_over_every_position(n: int) -> None:
    # Clusters and a ring on a half-pixel lattice: empty cells, far from one another, and
    # equal distances, on a grid fine enough that each search is local.
    rng = np.random.default_rng(n)
    angle = rng.uniform(0, 2 * np.pi, 4000)
    ring_x, ring_y = 300 * np.cos(angle), 300 * np.sin(angle) * 0.6
    blobs = rng.normal(0, 15, (2000, 2)) + rng.choice([-250.0, 0.0, 250.0], (2000, 2))
    x = np.round(np.concatenate([ring_x, blobs[:, 0]]) * 2) / 2
    y = np.round(np.concatenate([ring_y, blobs[:, 1]]) * 2) / 2
    picked = spread(x, y, n)
    assert picked == _spread_over_every_position(x, y, n)
    assert len(set(picked)) == n


def test_spread_fills_empty_cells_farthest_first() -> None:
    # Four tight clusters in the corners: 4 of the 16 cells hold positions.
    offsets = [(0.0, 0.0), (0.1, 0.0), (0.0, 0.1), (0.1, 0.1)]
    corners = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)]
    x = np.array([cx + dx for cx, _ in corners for dx, _ in offsets])
    y = np.array([cy + dy for _, cy in corners for _, dy in offsets])
    picked = spread(x, y, 8)
    # One per occupied cell, then in each cluster the position farthest from its pick.
    assert len(picked) == 8 == len(set(picked))
    assert occupied_cells(x, y, picked, grid=2) == 4
    assert picked == _reference_spread(list(x), list(y), 8)


def test_spread_of_a_line_uses_one_row_of_cells() -> None:
    x = np.arange(100.0)
    y = np.full(100, 3.0)
    picked = spread(x, y, 16)
    assert picked == _reference_spread(list(x), list(y), 16)
    assert len(picked) == 16 and picked[0] < 25 and picked[-1] > 75


def test_spread_is_the_same_fixture_in_every_run_and_records_its_rule(tmp_path: Path) -> None:
    first = generate_fixture(None, tmp_path / "a.npz", strategy="spread")
    again = generate_fixture(None, tmp_path / "b.npz", strategy="spread")
    a = json.loads(first.metadata_path.read_text(encoding="utf-8"))
    b = json.loads(again.metadata_path.read_text(encoding="utf-8"))
    assert a["content_sha256"] == b["content_sha256"]
    assert a["subset_strategy"] == "spread" and a["subset_indices"] == b["subset_indices"]
    assert a["subset_rule"].startswith("a 8x8 grid over the scan's bounding box;")
    assert a["coverage"]["cells_8x8"] == 64
    assert not any("cells of an 8x8 grid" in note for note in a["validation_notes"])


def test_stratified_records_its_cells_and_says_when_it_leaves_stripes(tmp_path: Path) -> None:
    result = generate_fixture(None, tmp_path / "f.npz")
    sidecar = json.loads(result.metadata_path.read_text(encoding="utf-8"))
    assert sidecar["coverage"]["cells_8x8"] == occupied_cells(
        synthetic_scan().xcoords, synthetic_scan().ycoords, sidecar["subset_indices"]
    )
    assert sidecar["coverage"]["cells_8x8"] < 32
    assert any(
        note.startswith(f"the stratified subset occupies {sidecar['coverage']['cells_8x8']} of")
        and "--subset-strategy spread" in note
        for note in sidecar["validation_notes"]
    )


@pytest.mark.parametrize(("strategy", "noted"), [("stratified", True), ("spread", False)])
def test_generate_prints_the_cells_and_suggests_spread_for_stripes(
    tmp_path: Path, strategy: str, noted: bool
) -> None:
    source = write_run1084_shaped_source(tmp_path / "run1084.npz")
    x, y = run1084_shaped_scan()
    result = run_cli(
        "generate",
        "--source",
        source,
        "--output",
        tmp_path / "f.npz",
        "--subset-strategy",
        strategy,
    )
    assert result.returncode == 0, result.stderr
    cells = occupied_cells(x, y, subset_indices(strategy, x, y, 64))
    assert f", {cells} of 64 cells\n" in result.stdout
    assert ("note            the stratified subset occupies" in result.stdout) is noted
