"""Which positions a fixture keeps: the subset rules, and how well a subset covers the scan.

Each rule is exact and deterministic: integer arithmetic, or IEEE float64 ``+ - * /``
and comparisons only, ties always going to the lower index, so that a subset is the
same on every platform and numpy version.

- ``stratified`` (PtychoPINN's rule): ``floor(i * N / n)`` for ``i < n``.
- ``first``: ``0 .. n-1``.
- ``spread``: a ``g x g`` grid, ``g = isqrt(n)``, over the scan's bounding box; from
  each cell the position nearest the cell's centre; empty cells are skipped; the rest of
  the ``n`` are added farthest-first from the positions already kept.
- ``groups``: ``n / G**2`` seeds near the ``spread`` picks, each with its ``G**2 - 1``
  nearest neighbours in the source scan, no position in two groups: PtychoPINN's
  gridsize groups, which it builds from each position's nearest neighbours, and which
  its ``4_quadrant`` grouping finds around every seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: The grid of the two-dimensional coverage figure: cells occupied out of 8 x 8.
COVERAGE_GRID = 8

#: Key of ``coverage`` in the sidecar: cells occupied of the 8 x 8 grid over the scan.
CELLS = f"cells_{COVERAGE_GRID}x{COVERAGE_GRID}"


def subset_indices(
    strategy: str, xcoords: NDArray[Any], ycoords: NDArray[Any], subset_size: int
) -> list[int]:
    """The positions ``strategy`` keeps, in ascending order.

    ``subset_size`` must be at most the number of positions. Raises
    :class:`.spec.OptionError` for a strategy that is not one of ``STRATEGIES``.
    """
    from .spec import DEFAULT_GRIDSIZE, parse_strategy

    strategy = parse_strategy(strategy, "strategy")
    n_positions = len(xcoords)
    if strategy == "stratified":
        return [i * n_positions // subset_size for i in range(subset_size)]
    if strategy == "first":
        return list(range(subset_size))
    if strategy == "groups":
        found = groups(xcoords, ycoords, subset_size, DEFAULT_GRIDSIZE)
        return sorted(i for group in found for i in group)
    return spread(xcoords, ycoords, subset_size)


def rule(strategy: str, n_positions: int, subset_size: int, gridsize: int | None = None) -> str:
    """The rule as the sidecar records it."""
    if strategy == "groups":
        members = (gridsize or 1) ** 2
        seeds = subset_size // members
        return (
            f"{seeds} picks by the spread rule for {seeds} positions, in ascending order;"
            f" each group's seed the first of the {SEED_CANDIDATES} free positions nearest"
            f" its pick whose {members - 1} nearest free positions lie within"
            f" {GROUP_REACH:g} scan steps and on at least {min(3, members - 1)} sides of it"
            " (else the nearest free one); the group: the seed and those positions, nearest"
            " first (squared distance, ties: lower index)"
        )
    if strategy == "stratified":
        return f"floor(i * {n_positions} / {subset_size}) for i in 0..{subset_size - 1}"
    if strategy == "spread":
        g = math.isqrt(subset_size)
        return (
            f"a {g}x{g} grid over the scan's bounding box; from each cell the position"
            " nearest its centre (ties: lower index); empty cells skipped; the rest up to"
            f" {subset_size} farthest-first from those kept (ties: lower index)"
        )
    return f"i for i in 0..{subset_size - 1}"


def _cells(values: NDArray[Any], low: float, span: float, grid: int) -> NDArray[Any]:
    """The column (or row) of each value in a ``grid``-wide split of ``[low, low + span]``."""
    import numpy as np

    if span == 0:
        return np.zeros(values.shape, dtype=np.int64)
    # floor((v - low) * grid / span): the top edge belongs to the last cell.
    cells = np.floor((values - low) * grid / span).astype(np.int64)
    return np.minimum(cells, grid - 1)


def spread(xcoords: NDArray[Any], ycoords: NDArray[Any], subset_size: int) -> list[int]:
    """The ``spread`` rule (see the module's docstring), for ``subset_size <= len(xcoords)``."""
    import numpy as np

    x = np.asarray(xcoords, dtype=np.float64)
    y = np.asarray(ycoords, dtype=np.float64)
    g = math.isqrt(subset_size)
    x_low, y_low = float(x.min()), float(y.min())
    x_span, y_span = float(x.max()) - x_low, float(y.max()) - y_low
    cx, cy = _cells(x, x_low, x_span, g), _cells(y, y_low, y_span, g)
    cell = cy * g + cx
    # Distance (squared) to the centre of its cell: low + (c + 0.5) * span / g.
    dx = x - (x_low + (cx + 0.5) * x_span / g)
    dy = y - (y_low + (cy + 0.5) * y_span / g)
    distance = dx * dx + dy * dy
    # Each cell's least distance, then the lowest index at that distance: its pick.
    best = np.full(g * g, np.inf)
    np.minimum.at(best, cell, distance)
    nearest = np.flatnonzero(distance == best[cell])
    pick = np.full(g * g, x.size, dtype=np.int64)
    np.minimum.at(pick, cell[nearest], nearest)
    kept = pick[pick < x.size]
    if kept.size < subset_size:
        grid = _Grid(x, y, cell, g, (x_span / g, y_span / g))
        kept = grid.farthest_first(kept, subset_size)
    return sorted(int(i) for i in kept)


class _Grid:
    """Farthest-first picks, the positions kept in cells of the ``spread`` grid.

    "Farthest" is the largest squared distance to the nearest position kept so far;
    ties go to the lower index. Own code, not a k-d tree, for two reasons: scipy's
    ``cKDTree`` computes its distances its own way, which would make a tie depend on its
    version; and the grid already bounds every search. Every position shares its cell
    with a kept one (the cell's pick), so its nearest kept position lies within the
    cell's diagonal: only kept positions ``reach`` cells away need be looked at, and a
    new pick changes only the positions within ``reach`` cells of it. The 1M-position
    rows of ``benchmarks/bench_subsets.py`` rest on this (3.2 s with every position
    updated for every pick, on a ring that leaves cells empty).
    """

    def __init__(
        self,
        x: NDArray[Any],
        y: NDArray[Any],
        cell: NDArray[Any],
        g: int,
        size: tuple[float, float],
    ) -> None:
        import numpy as np

        self.x, self.y, self.g = x, y, g
        self.cx, self.cy = cell % g, cell // g
        # Positions by cell, ascending index within each: a cell is one slice of order.
        self.order = np.argsort(cell, kind="stable")
        self.rank = np.empty_like(self.order)
        self.rank[self.order] = np.arange(self.order.size)
        self.starts = np.searchsorted(cell[self.order], np.arange(g * g + 1))
        self.xs, self.ys = x[self.order], y[self.order]
        self.nearest = np.full(x.size, np.inf)
        self.best = np.full(g * g, -np.inf)
        self.best_index = np.full(g * g, x.size, dtype=np.int64)
        diagonal = math.hypot(*size)
        # Two cells more than the diagonal spans, for the rounding of the cell indices.
        self.reach = tuple(
            0 if side == 0 else min(g - 1, math.floor(diagonal / side) + 2) for side in size
        )

    def _cells_near(self, i: int) -> list[int]:
        rx, ry = self.reach
        cx, cy, g = int(self.cx[i]), int(self.cy[i]), self.g
        return [
            row * g + column
            for row in range(max(0, cy - ry), min(g, cy + ry + 1))
            for column in range(max(0, cx - rx), min(g, cx + rx + 1))
        ]

    def _closer_to(self, i: int, cells: list[int]) -> None:
        """``nearest = min(nearest, squared distance to i)`` over ``cells``, in place."""
        import numpy as np

        x, y = self.x[i], self.y[i]
        for c in cells:
            start, stop = self.starts[c], self.starts[c + 1]
            if start == stop:
                continue
            dx = self.xs[start:stop] - x
            dy = self.ys[start:stop] - y
            part = self.nearest[start:stop]
            np.minimum(part, dx * dx + dy * dy, out=part)

    def _rescore(self, cells: list[int]) -> None:
        import numpy as np

        for c in cells:
            start, stop = self.starts[c], self.starts[c + 1]
            if start == stop:
                continue
            j = int(np.argmax(self.nearest[start:stop]))  # the first: the lowest index
            self.best[c] = self.nearest[start + j]
            self.best_index[c] = self.order[start + j]

    def _keep(self, i: int) -> list[int]:
        cells = self._cells_near(i)
        self._closer_to(i, cells)
        # A kept position is marked -1: never the farthest, and min() keeps the mark.
        self.nearest[self.rank[i]] = -1.0
        return cells

    def farthest_first(self, kept: NDArray[Any], subset_size: int) -> NDArray[Any]:
        import numpy as np

        touched: set[int] = set()
        for i in kept:
            touched.update(self._keep(int(i)))
        self._rescore(sorted(touched))
        picks = [int(i) for i in kept]
        while len(picks) < subset_size:
            top = self.best.max()
            pick = int(self.best_index[self.best == top].min())
            picks.append(pick)
            self._rescore(self._keep(pick))
        return np.asarray(picks, dtype=np.int64)


def coverage(values: NDArray[Any], indices: Sequence[int]) -> float:
    """Range of the subset's values over the range of all values (1.0 for a constant)."""
    return span_fraction(values, values[list(indices)])


def span_fraction(values: NDArray[Any], chosen: NDArray[Any]) -> float:
    """Range of ``chosen`` over the range of ``values`` (1.0 for a constant)."""
    full = float(values.max() - values.min())
    part = float(chosen.max() - chosen.min())
    return 1.0 if full == 0 else part / full


def occupied_cells(
    xcoords: NDArray[Any], ycoords: NDArray[Any], indices: Sequence[int], grid: int = COVERAGE_GRID
) -> int:
    """Cells of a ``grid x grid`` split of the scan's bounding box that hold a kept position."""
    import numpy as np

    x = np.asarray(xcoords, dtype=np.float64)
    y = np.asarray(ycoords, dtype=np.float64)
    chosen = np.asarray(indices, dtype=np.intp)
    x_low, y_low = float(x.min()), float(y.min())
    cx = _cells(x[chosen], x_low, float(x.max()) - x_low, grid)
    cy = _cells(y[chosen], y_low, float(y.max()) - y_low, grid)
    return int(np.unique(cy * grid + cx).size)


def stripes_note(strategy: str, cells: int) -> str | None:
    """Say so when a subset occupies fewer than half the cells, and what covers the scan."""
    total = COVERAGE_GRID * COVERAGE_GRID
    if 2 * cells >= total:
        return None
    return (
        f"the {strategy} subset occupies {cells} of the {total} cells of an"
        f" {COVERAGE_GRID}x{COVERAGE_GRID} grid over the scan: it covers the ranges of x and"
        " y but not the scan's area; --subset-strategy spread (ini"
        " ptycho_fixture_subset_strategy = spread) covers it in two dimensions"
    )


#: How many free positions nearest a spread pick are tried as its group's seed.
SEED_CANDIDATES = 64
#: How far a group's members may lie from its seed, in scan steps.
GROUP_REACH = 3.0


def groups(
    xcoords: NDArray[Any], ycoords: NDArray[Any], subset_size: int, gridsize: int
) -> list[list[int]]:
    """The ``groups`` rule: ``subset_size / gridsize**2`` groups of source indices, seed first.

    The spread subset of ``subset_size / gridsize**2`` positions gives one pick per group,
    taken in ascending order. The group's seed is the first of the (up to
    :data:`SEED_CANDIDATES`) free positions nearest the pick, nearest first, whose
    ``gridsize**2 - 1`` nearest free positions lie within :data:`GROUP_REACH` scan steps
    of it and on at least three sides of it (:func:`quadrants`); if none is, the nearest
    free one. The group is the seed and those positions, nearest first. Distances are
    squared Euclidean distances on (x, y), ties go to the lower index, and a scan step is
    :func:`scan_step_squared`. ``subset_size`` must be a multiple of ``gridsize**2``.
    """
    import numpy as np

    members = gridsize * gridsize
    x = np.asarray(xcoords, dtype=np.float64)
    y = np.asarray(ycoords, dtype=np.float64)
    search = _Nearest(x, y)
    reach = GROUP_REACH * GROUP_REACH * scan_step_squared(x, y, search)
    needed = min(3, members - 1)
    found: list[list[int]] = []
    for pick in spread(x, y, subset_size // members):
        free = x.size - len(found) * members
        candidates = search.free_near(pick, min(SEED_CANDIDATES, free))
        group: list[int] | None = None
        for seed in candidates:
            search.used[seed] = True
            near = search.free_near(seed, members - 1)
            search.used[seed] = False
            far = max((_squared(x, y, seed, i) for i in near), default=0.0)
            if far <= reach and len(quadrants(x, y, seed, near)) >= needed:
                group = [seed, *near]
                break
        if group is None:
            seed = candidates[0]
            search.used[seed] = True
            group = [seed, *search.free_near(seed, members - 1)]
        search.used[group] = True
        found.append(group)
    return found


def quadrants(x: NDArray[Any], y: NDArray[Any], centre: int, others: Sequence[int]) -> set[str]:
    """The sides of ``centre`` that ``others`` lie on: TL, TR, BL, BR (dx, dy both non-zero).

    PtychoPINN's ``4_quadrant`` grouping takes one neighbour from each; a centre with
    neighbours on three sides stands in for the fourth itself.
    """
    sides = set()
    for i in others:
        dx, dy = float(x[i] - x[centre]), float(y[i] - y[centre])
        if dx != 0 and dy != 0:
            sides.add(("B" if dy < 0 else "T") + ("L" if dx < 0 else "R"))
    return sides


def _squared(x: NDArray[Any], y: NDArray[Any], i: int, j: int) -> float:
    dx, dy = float(x[j] - x[i]), float(y[j] - y[i])
    return dx * dx + dy * dy


def scan_step_squared(
    x: NDArray[Any], y: NDArray[Any], search: _Nearest | None = None, sample: int = 256
) -> float:
    """The square of the scan's step: the lower median of the squared distances to the
    nearest other position, over the positions ``floor(i * N / m)`` for ``i < m = min(N,
    sample)`` (0 for one position). ``search`` must have no position in use."""
    if x.size < 2:
        return 0.0
    search = search or _Nearest(x, y)
    m = min(x.size, sample)
    distances = []
    for i in (k * x.size // m for k in range(m)):
        search.used[i] = True
        (j,) = search.free_near(i, 1)
        search.used[i] = False
        distances.append(_squared(x, y, i, j))
    return sorted(distances)[(m - 1) // 2]


class _Nearest:
    """The nearest free positions to a position, by a search in a growing square window.

    Own code rather than scipy's ``cKDTree``: the ranking must be this module's squared
    distance with ties to the lower index, the same on every platform and version, and
    a window over the positions sorted by x finds the few neighbours of a seed in a
    million positions in well under a millisecond (``benchmarks/bench_subsets.py``).
    """

    def __init__(self, x: NDArray[Any], y: NDArray[Any]) -> None:
        import numpy as np

        self.x, self.y = x, y
        self.by_x = np.argsort(x, kind="stable")
        self.sorted_x = x[self.by_x]
        self.used = np.zeros(x.size, dtype=bool)
        span = max(float(x.max() - x.min()), float(y.max() - y.min()))
        # About the spacing of the scan: the window starts there and doubles.
        self.start = span / math.sqrt(x.size) if span > 0 else 1.0
        self.span = span

    def free_near(self, centre: int, count: int) -> list[int]:
        """The ``count`` nearest free positions to ``centre``, nearest first."""
        import numpy as np

        if count == 0:
            return []
        cx, cy = self.x[centre], self.y[centre]
        half = self.start * math.sqrt(count)
        while True:
            window = 2.0 * half
            low = int(np.searchsorted(self.sorted_x, cx - window, "left"))
            high = int(np.searchsorted(self.sorted_x, cx + window, "right"))
            near = self.by_x[low:high]
            near = near[(np.abs(self.y[near] - cy) <= window) & ~self.used[near]]
            dx, dy = self.x[near] - cx, self.y[near] - cy
            distance = dx * dx + dy * dy
            order = np.lexsort((near, distance))[:count]
            everything = half > 2.0 * self.span
            # Trusted only inside half the window, well clear of the rounding of its edges:
            # every position outside that circle is farther than the count-th found.
            if order.size == count and (everything or distance[order[-1]] < half * half):
                return [int(i) for i in near[order]]
            if everything:
                raise ValueError(f"fewer than {count} free positions are left")
            half *= 2.0
