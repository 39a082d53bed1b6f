"""One picture of a fixture, to judge it at a glance: patterns, probe, object, scan.

The figure holds eight diffraction patterns on a shared log scale (titled with their
index in the fixture and in the source), the probe's amplitude and phase, and the
object's amplitude and phase with the fixture's scan positions on top; when the
sidecar names a source that can be found, the source's positions are drawn underneath
in a lighter colour, so that the coverage of the subset shows. The title gives the
fixture's name, shapes, dtypes, coverage and a short content digest.

matplotlib is an optional extra (``pip install pytest-ptycho-fixture[plot]``). It is
imported when a picture is drawn, through :class:`~matplotlib.figure.Figure` and the Agg
canvas directly: no pyplot state, no display needed.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import contract as c
from ..contract import ContractError
from ..spec import BUILTIN_SOURCE, SHIPPED_SIDECAR
from ..subsets import CELLS, COVERAGE_GRID, span_fraction

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.colorbar import Colorbar
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage
    from numpy.typing import NDArray

PLOT_EXTRA_HINT = (
    "the show command needs matplotlib, an optional extra: pip install pytest-ptycho-fixture[plot]"
)
PATTERNS = 8
PROBE_AMPLITUDE_LABEL = "amplitude"
PROBE_PHASE_LABEL = "phase (rad)"
DIFFRACTION_LABEL = "amplitude (log scale)"
DPI = 80
FIGURE_INCHES = (10.5, 9.6)
#: Files whose folder is taken as a project's rootdir, as pytest does.
_ROOT_MARKERS = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
_FIXTURE_COLOUR = "#d62728"
_SOURCE_COLOUR = "#9ecae1"
#: Patterns are shown down to this fraction of the brightest amplitude.
_LOG_RANGE = 1e-4


class PlotExtraMissing(ImportError):
    """matplotlib is not installed; ``str()`` says how to install it."""


@dataclass(frozen=True)
class FixtureView:
    """What the picture shows: the fixture, its sidecar, and the source's positions."""

    path: Path
    arrays: Mapping[str, NDArray[Any]]
    content_sha256: str
    sidecar: Path | None
    metadata: Mapping[str, Any] | None
    source_positions: tuple[NDArray[np.float64], NDArray[np.float64]] | None
    source_note: str

    @property
    def matches_sidecar(self) -> bool | None:
        """Whether the content digest is the sidecar's (``None`` without a sidecar)."""
        if self.metadata is None:
            return None
        return bool(self.metadata.get("content_sha256") == self.content_sha256)


class Rendered(NamedTuple):
    """What :func:`render_fixture` wrote, and the figure it drew."""

    output: Path
    figure: Figure
    view: FixtureView


def _find_sidecar(
    path: Path, metadata: Path | None, content_sha256: str
) -> tuple[Path | None, dict[str, Any] | None]:
    """The given sidecar; else the one beside the NPZ; else the shipped one if it matches.

    The built-in default kept in pytest's cache folder has no sidecar beside it: the
    one shipped in the package describes it.
    """
    from ..npz.sidecar import default_sidecar_path, read_sidecar

    if metadata is not None:
        return metadata, read_sidecar(metadata)
    beside = default_sidecar_path(path)
    if beside.exists():
        return beside, read_sidecar(beside)
    shipped = read_sidecar(SHIPPED_SIDECAR)
    if shipped["content_sha256"] == content_sha256:
        return SHIPPED_SIDECAR, shipped
    return None, None


def _project_roots(start: Path) -> list[Path]:
    """Folders above ``start`` (nearest first) holding a pytest or Python project file."""
    return [
        folder
        for folder in (start.resolve(), *start.resolve().parents)
        if any((folder / name).is_file() for name in _ROOT_MARKERS)
    ]


def _source_positions(
    label: str, fixture: Path, meta: Mapping[str, Any] | None = None
) -> tuple[tuple[NDArray[np.float64], NDArray[np.float64]] | None, str]:
    """``((xcoords, ycoords), note)`` of the source a sidecar names, or ``(None, why)``.

    A relative path is looked up in the working folder, then in the project folders
    above the fixture (where pytest's rootdir is); only its coordinates are read.
    """
    import numpy as np

    from ..sources.registry import source_positions

    if label == BUILTIN_SOURCE:
        from ..simulate import synthetic_scan

        scan = synthetic_scan()
        return (scan.xcoords, scan.ycoords), f"source positions: {label}"
    given = Path(label).expanduser()
    bases = [Path.cwd(), *_project_roots(fixture.parent)]
    candidates = [given] if given.is_absolute() else [base / given for base in bases]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        where = ", ".join(dict.fromkeys(str(path.parent) for path in candidates))
        return None, f"source positions not shown: {label} not found (looked in {where})"
    try:
        keys = (meta or {}).get("source_keys")
        x, y = source_positions(found, str(found), keys if isinstance(keys, dict) else None)
        xs = x.astype(np.float64).reshape(-1)
        ys = y.astype(np.float64).reshape(-1)
    except ContractError as exc:
        return None, f"source positions not shown: {exc}"
    if xs.shape != ys.shape:
        return None, f"source positions not shown: {found} has {xs.size} x and {ys.size} y"
    return (xs, ys), f"source positions: {found}"


def load_view(
    path: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | None = None,
) -> FixtureView:
    """Read the fixture (checked against the data contract), its sidecar and its source."""
    from ..npz.reader import load_npz

    fixture = Path(path)
    loaded = load_npz(fixture)
    c.validate_fixture(fixture, loaded.arrays)
    sidecar, meta = _find_sidecar(
        fixture, Path(metadata) if metadata is not None else None, loaded.content_sha256
    )
    positions = None
    note = "source positions not shown: no sidecar names the source"
    label = meta.get("source_dataset") if meta else None
    if isinstance(label, str) and label:
        positions, note = _source_positions(label, fixture, meta)
    return FixtureView(
        fixture, loaded.arrays, loaded.content_sha256, sidecar, meta, positions, note
    )


# -- drawing ------------------------------------------------------------------------


def _shape(array: NDArray[Any]) -> str:
    return "x".join(str(n) for n in array.shape)


def _coverage(view: FixtureView) -> str:
    recorded = view.metadata.get("coverage") if view.metadata else None
    if isinstance(recorded, Mapping) and {"x", "y"} <= set(recorded):
        text = f"coverage x {float(recorded['x']):.1%}, y {float(recorded['y']):.1%}"
        cells = recorded.get(CELLS)
        if isinstance(cells, int):
            text += f", {cells} of {COVERAGE_GRID * COVERAGE_GRID} cells"
        return text
    if view.source_positions is None:
        return "coverage unknown (no source)"
    parts = []
    for axis, values, key in zip("xy", view.source_positions, (c.XCOORDS, c.YCOORDS)):
        parts.append(f"{axis} {span_fraction(values, view.arrays[key]):.1%}")
    return f"coverage {', '.join(parts)}"


def _title(view: FixtureView) -> str:
    """Three lines: name and digest; shapes and dtypes; subset, source and coverage."""
    a = view.arrays
    digest = f"content_sha256 {view.content_sha256[:12]}"
    if view.matches_sidecar is None:
        digest += " (no sidecar)"
    else:
        digest += f" ({'matches' if view.matches_sidecar else 'DIFFERS FROM'} its sidecar)"
    shapes = "   ".join(
        f"{key} {_shape(a[key])} {a[key].dtype}"
        for key in (c.DIFFRACTION, c.PROBE, c.OBJECT, c.XCOORDS)
    )
    n = a[c.DIFFRACTION].shape[0]
    meta = view.metadata or {}
    subset = f"{n} positions"
    if "source_positions" in meta:
        subset = f"{n} of {meta['source_positions']} positions"
        if "subset_strategy" in meta:
            subset += f" ({meta['subset_strategy']})"
    if "source_dataset" in meta:
        subset += f" from {meta['source_dataset']}"
    return f"{view.path.name}   {digest}\n{shapes}\n{subset}, {_coverage(view)}"


def _pattern_indices(n: int, count: int = PATTERNS) -> list[int]:
    """``count`` fixture indices spread evenly from the first to the last (all if fewer)."""
    if n <= count:
        return list(range(n))
    return [round(k * (n - 1) / (count - 1)) for k in range(count)]


def _small_colorbar(
    figure: Figure, image: AxesImage, ax: Axes | list[Axes], label: str, **options: Any
) -> Colorbar:
    """A narrow labelled colour bar beside ``ax`` (one axes or a block), in small type.

    ``options`` go to :meth:`~matplotlib.figure.Figure.colorbar` (``ticks``, ``format``).
    """
    bar = figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02, aspect=25, **options)
    bar.set_label(label, fontsize="x-small", labelpad=2)
    bar.ax.tick_params(labelsize="x-small", length=2, pad=1)
    return bar


def _plain(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _coverage_grid(ax: Axes, xs: NDArray[np.float64], ys: NDArray[np.float64]) -> None:
    """The 8 x 8 grid over the scan's bounding box whose occupied cells the sidecar counts."""
    import numpy as np

    x_edges = np.linspace(float(xs.min()), float(xs.max()), COVERAGE_GRID + 1)
    y_edges = np.linspace(float(ys.min()), float(ys.max()), COVERAGE_GRID + 1)
    low, high = y_edges[0], y_edges[-1]
    ax.vlines(x_edges, low, high, colors=_SOURCE_COLOUR, linewidths=0.5, alpha=0.5, zorder=0)
    left, right = x_edges[0], x_edges[-1]
    ax.hlines(
        y_edges,
        left,
        right,
        colors=_SOURCE_COLOUR,
        linewidths=0.5,
        alpha=0.5,
        zorder=0,
        label=f"{COVERAGE_GRID}x{COVERAGE_GRID} cells",
    )


def _scan(ax: Axes, view: FixtureView) -> None:
    from matplotlib.patches import Rectangle

    if view.source_positions is not None:
        xs, ys = view.source_positions
        ax.scatter(xs, ys, s=3, color=_SOURCE_COLOUR, linewidths=0, label=f"source ({xs.size})")
        _coverage_grid(ax, xs, ys)
    x, y = view.arrays[c.XCOORDS], view.arrays[c.YCOORDS]
    ax.scatter(x, y, s=6, color=_FIXTURE_COLOUR, linewidths=0, label=f"fixture ({x.size})")
    # The object area the fixture's patches read: patch rows start at y - H/2.
    h, w = view.arrays[c.PROBE].shape
    corner = (float(x.min()) - w // 2, float(y.min()) - h // 2)
    size = (float(x.max() - x.min()) + w, float(y.max() - y.min()) + h)
    ax.add_patch(
        Rectangle(
            corner,
            *size,
            fill=False,
            linestyle="--",
            linewidth=0.8,
            edgecolor=_FIXTURE_COLOUR,
            label="area the patches read",
        )
    )
    ax.set_xlabel("x (object px)")
    ax.set_ylabel("y (object px)")


def draw(view: FixtureView) -> Figure:
    """The figure for ``view``; every panel has a title naming what it shows.

    Top: the probe's amplitude and phase in the first column, then two rows of four
    diffraction patterns; bottom: the object's amplitude and phase with the scan. Each
    probe and object panel has a colour bar; the patterns share one, on their log scale.
    """
    import numpy as np

    try:
        from matplotlib.colors import LogNorm
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedFormatter, MaxNLocator
    except ImportError as exc:
        raise PlotExtraMissing(PLOT_EXTRA_HINT) from exc

    a = view.arrays
    diffraction, probe, obj = a[c.DIFFRACTION], a[c.PROBE], a[c.OBJECT]
    # At the picture's DPI, so that the figure's own renderer measures what the PNG shows.
    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    outer = figure.add_gridspec(2, 1, height_ratios=(2, 2.2))
    top, bottom = outer[0].subgridspec(2, 5), outer[1].subgridspec(1, 2)

    probe_amplitude = np.abs(probe)
    peak = float(probe_amplitude.max()) or 1.0
    # The phase where the probe is dark is noise; leave it blank.
    probe_phase = np.ma.masked_array(np.angle(probe), mask=probe_amplitude < 1e-3 * peak)
    # (title, image, imshow options, colour bar options) for each row of the first column.
    probes: list[tuple[str, NDArray[Any], dict[str, Any], dict[str, Any]]] = [
        (
            f"probe amplitude (0..{peak:.3g})",
            probe_amplitude,
            {"cmap": "viridis"},
            {"label": PROBE_AMPLITUDE_LABEL, "ticks": MaxNLocator(4)},
        ),
        (
            "probe phase (-pi..pi)",
            probe_phase,
            {"cmap": "twilight", "vmin": -math.pi, "vmax": math.pi},
            {
                "label": PROBE_PHASE_LABEL,
                "ticks": [-math.pi, 0.0, math.pi],
                "format": FixedFormatter([r"$-\pi$", "0", r"$\pi$"]),
            },
        ),
    ]
    for row, (name, image, style, bar) in enumerate(probes):
        ax = figure.add_subplot(top[row, 0])
        shown = ax.imshow(image, interpolation="nearest", **style)
        ax.set_title(name, fontsize="small")
        _plain(ax)
        _small_colorbar(figure, shown, ax, **bar)

    indices = _pattern_indices(diffraction.shape[0])
    source_index: Sequence[Any] = (view.metadata or {}).get("subset_indices") or ()
    brightest = float(diffraction[indices].max()) or 1.0
    norm = LogNorm(vmin=brightest * _LOG_RANGE, vmax=brightest)
    scale = f"diffraction amplitudes on one log scale, {_LOG_RANGE:g} to 1 times {brightest:.3g}"
    figure.suptitle(f"{_title(view)}\n{scale}", fontsize="medium")
    patterns = []
    for slot, i in enumerate(indices):
        ax = figure.add_subplot(top[slot // 4, 1 + slot % 4])
        pattern = np.maximum(diffraction[i], brightest * _LOG_RANGE)
        shown = ax.imshow(pattern, norm=norm, cmap="magma", interpolation="nearest")
        origin = f", source #{source_index[i]}" if i < len(source_index) else ""
        ax.set_title(f"diffraction #{i}{origin}", fontsize="x-small")
        _plain(ax)
        patterns.append(ax)
    # One bar for the block: every pattern is drawn with the same norm.
    _small_colorbar(figure, shown, patterns, DIFFRACTION_LABEL)

    object_phase = np.angle(obj)
    limit = float(np.abs(object_phase).max()) or math.pi
    for half, name, image, style in (
        (0, "object amplitude + scan", np.abs(obj), {"cmap": "gray"}),
        (
            1,
            "object phase (rad) + scan",
            object_phase,
            {"cmap": "twilight", "vmin": -limit, "vmax": limit},
        ),
    ):
        ax = figure.add_subplot(bottom[0, half])
        shown = ax.imshow(image, interpolation="nearest", **style)
        figure.colorbar(shown, ax=ax, shrink=0.8, pad=0.01)
        ax.set_title(name, fontsize="small")
        _scan(ax, view)
        if half == 0:
            ax.legend(loc="lower right", fontsize="x-small", markerscale=2)
    return figure


def render_fixture(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    metadata: str | os.PathLike[str] | None = None,
) -> Rendered:
    """Draw the fixture at ``path`` and write the picture to ``output`` as a PNG, atomically.

    Raises :class:`PlotExtraMissing` without matplotlib and :class:`ContractError` for a
    file that is not a fixture.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from PIL import Image  # a dependency of matplotlib
    except ImportError as exc:
        raise PlotExtraMissing(PLOT_EXTRA_HINT) from exc
    from ..atomic import atomic_writer

    view = load_view(path, metadata=metadata)
    figure = draw(view)
    FigureCanvasAgg(figure)
    full_colour = io.BytesIO()
    figure.savefig(full_colour, format="png", dpi=DPI)
    # 256 colours, as many as a colour map has: a third of the bytes of a full-colour
    # PNG, small enough to commit next to a README.
    picture = Image.open(full_colour).convert("RGB").quantize(256)
    target = Path(output)
    with atomic_writer(target) as handle:
        picture.save(handle, format="PNG", optimize=True)
    return Rendered(target, figure, view)
