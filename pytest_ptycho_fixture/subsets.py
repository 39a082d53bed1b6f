"""Which positions a fixture keeps: the subset rules, and how well a subset covers the scan.

Each rule is exact and deterministic: integer arithmetic, or IEEE float64 ``+ - * /``
and comparisons only, ties always going to the lower index, so that a subset is the
same on every platform and numpy version.

- ``stratified`` (PtychoPINN's rule): ``floor(i * N / n)`` for ``i < n``.
- ``first``: ``0 .. n-1``.
- ``spread``: a ``g x g`` grid, ``g = isqrt(n)``, over the scan's bounding box; from
  each cell the position nearest the cell's centre; empty cells are skipped; the rest of
  the ``n`` are added farthest-first from the positions already kept.
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
    from .spec import parse_strategy

    strategy = parse_strategy(strategy, "strategy")
    n_positions = len(xcoords)
    if strategy == "stratified":
        return [i * n_positions // subset_size for i in range(subset_size)]
    if strategy == "first":
        return list(range(subset_size))
    return spread(xcoords, ycoords, subset_size)


def rule(strategy: str, n_positions: int, subset_size: int) -> str:
    """The rule as the sidecar records it."""
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
    full = float(values.max() - values.min())
    chosen = values[list(indices)]
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
