"""``ptycho-fixture show``: one picture of a fixture, drawn headless with matplotlib."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_command, folder_entries, one_error_line, run_cli, write_source
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.colorbar import Colorbar
from matplotlib.colors import LogNorm
from matplotlib.image import AxesImage, imread
from matplotlib.transforms import Bbox
from numpy.typing import NDArray

from pytest_ptycho_fixture.cli.picture import DPI, FIGURE_INCHES, Rendered, render_fixture
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.simulate import synthetic_scan
from pytest_ptycho_fixture.spec import SHIPPED_SIDECAR

DOCS_PICTURE = Path(__file__).parent.parent / "docs" / "fixture.png"
PROBE_PANELS = ["probe amplitude", "probe phase"]
OBJECT_PANELS = ["object amplitude + scan", "object phase (rad) + scan"]
#: The fixture indices of the eight diffraction patterns shown for the built-in default.
DIFFRACTION_SHOWN = [0, 9, 18, 27, 36, 45, 54, 63]
WIDTH, HEIGHT = round(FIGURE_INCHES[0] * DPI), round(FIGURE_INCHES[1] * DPI)

# Run as `python -c NO_MATPLOTLIB ARGS...`: the command line in a process where
# `import matplotlib` fails as it does where matplotlib is not installed.
NO_MATPLOTLIB = """
import runpy, sys

class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoMatplotlib())
if sys.argv[1:] == ["--try-import"]:
    import matplotlib
sys.argv[0] = "ptycho-fixture"
runpy.run_module("pytest_ptycho_fixture", run_name="__main__")
"""


@pytest.fixture(scope="module")
def default_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in default fixture with its sidecar beside it."""
    folder = tmp_path_factory.mktemp("default")
    return generate_fixture(None, folder / "minimal_dataset_v1.npz").output_path


@pytest.fixture(scope="module")
def rendered(default_fixture: Path) -> Rendered:
    return render_fixture(default_fixture, default_fixture.with_name("fixture.png"))


def titles(rendered: Rendered) -> list[str]:
    return [ax.get_title() for ax in rendered.figure.axes if ax.get_title()]


def panel(rendered: Rendered, title: str) -> Axes:
    (ax,) = [ax for ax in rendered.figure.axes if ax.get_title() == title]
    return ax


def probe_titles(rendered: Rendered) -> list[str]:
    return [title for title in titles(rendered) if title.startswith("probe")]


def diffraction_panels(rendered: Rendered) -> list[Axes]:
    return [ax for ax in rendered.figure.axes if ax.get_title().startswith("diffraction #")]


def image(ax: Axes) -> AxesImage:
    (shown,) = ax.images
    return shown


def colorbar(ax: Axes) -> Colorbar:
    """The colour bar drawn for the image in ``ax``: one of the figure's axes."""
    bar = image(ax).colorbar
    assert bar is not None, f"{ax.get_title()!r} has no colorbar"
    assert bar.ax in ax.figure.axes
    return bar


def scatter_offsets(ax: Axes) -> list[NDArray[np.float64]]:
    return [
        np.asarray(item.get_offsets(), dtype=np.float64)
        for item in ax.collections
        if isinstance(item, PathCollection)
    ]


def picture(path: Path) -> NDArray[np.float32]:
    image: NDArray[np.float32] = imread(path)
    return image[..., :3]


# -- the picture ----------------------------------------------------------------------


def test_the_picture_is_a_png_of_the_figure_size_neither_blank_nor_one_colour(
    rendered: Rendered,
) -> None:
    assert rendered.output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = picture(rendered.output)
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert float(image.std()) > 0.1
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 100
    assert rendered.output.stat().st_size < 300_000


def test_it_draws_one_panel_per_element_each_titled(rendered: Rendered) -> None:
    shown = titles(rendered)
    diffraction = [title for title in shown if title.startswith("diffraction #")]
    assert len(diffraction) == 8
    assert [title.partition(" (")[0] for title in shown if title.startswith("probe")] == (
        PROBE_PANELS
    )
    assert [title for title in shown if title.startswith("object")] == OBJECT_PANELS
    assert len(shown) == 12
    # The only other axes are the colour bars: probe amplitude, probe phase, the
    # diffraction block, and the two object panels.
    assert len(rendered.figure.axes) == 17


def test_the_probe_amplitude_and_phase_each_have_a_colorbar_with_a_label(
    rendered: Rendered,
) -> None:
    amplitude, phase = (panel(rendered, title) for title in probe_titles(rendered))
    amplitude_bar, phase_bar = (colorbar(ax) for ax in (amplitude, phase))
    assert amplitude_bar.ax.get_ylabel() == "amplitude"
    assert phase_bar.ax.get_ylabel() == "phase (rad)"
    peak = float(np.abs(rendered.view.arrays["probeGuess"]).max())
    assert amplitude_bar.norm.vmax == pytest.approx(peak)
    assert (phase_bar.norm.vmin, phase_bar.norm.vmax) == (-np.pi, np.pi)
    assert list(phase_bar.get_ticks()) == [-np.pi, 0.0, np.pi]
    labels = [text.get_text() for text in phase_bar.ax.get_yticklabels()]
    assert labels == [r"$-\pi$", "0", r"$\pi$"]


def test_the_eight_diffraction_patterns_share_one_colorbar_on_their_log_scale(
    rendered: Rendered,
) -> None:
    images = [image(ax) for ax in diffraction_panels(rendered)]
    bars = [shown.colorbar for shown in images if shown.colorbar is not None]
    assert len(images) == 8
    assert len(bars) == 1
    (bar,) = bars
    assert bar.ax in rendered.figure.axes
    assert bar.ax.get_ylabel() == "amplitude (log scale)"
    assert isinstance(bar.norm, LogNorm)
    brightest = float(rendered.view.arrays["diffraction"][DIFFRACTION_SHOWN].max())
    assert (bar.norm.vmin, bar.norm.vmax) == pytest.approx((brightest * 1e-4, brightest))
    for shown in images:
        assert isinstance(shown.norm, LogNorm)
        assert (shown.norm.vmin, shown.norm.vmax) == (bar.norm.vmin, bar.norm.vmax)


def test_the_colorbars_stand_right_of_their_panels_and_nothing_overlaps(
    rendered: Rendered,
) -> None:
    probes = [panel(rendered, title) for title in probe_titles(rendered)]
    patterns = diffraction_panels(rendered)
    (block,) = {colorbar(ax) for ax in patterns if image(ax).colorbar is not None}
    for panels, bar in [([probes[0]], colorbar(probes[0])), ([probes[1]], colorbar(probes[1])),
                        (patterns, block)]:  # fmt: skip
        where = bar.ax.get_position()
        assert where.x0 > max(ax.get_position().x1 for ax in panels)
        assert where.y0 >= min(ax.get_position().y0 for ax in panels) - 1e-3
        assert where.y1 <= max(ax.get_position().y1 for ax in panels) + 1e-3
    # Each axes with its title, tick labels and colour bar label, and the title above.
    figure = rendered.figure
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    (suptitle,) = figure.texts
    boxes = [ax.get_tightbbox(renderer) for ax in figure.axes]
    boxes.append(suptitle.get_window_extent(renderer))
    whole = Bbox.from_bounds(0, 0, WIDTH, HEIGHT)
    for k, box in enumerate(boxes):
        assert box is not None
        assert whole.containsx(box.x0) and whole.containsx(box.x1), k
        assert whole.containsy(box.y0) and whole.containsy(box.y1), k
        for other in boxes[k + 1 :]:
            assert other is not None
            shared = Bbox.intersection(box, other)
            assert shared is None or shared.width * shared.height == 0, (box, other)


def test_the_diffraction_panels_name_their_index_in_the_fixture_and_in_the_source(
    rendered: Rendered,
) -> None:
    diffraction = [title for title in titles(rendered) if title.startswith("diffraction #")]
    indices = rendered.view.metadata["subset_indices"] if rendered.view.metadata else []
    expected = [0, 9, 18, 27, 36, 45, 54, 63]
    assert diffraction == [f"diffraction #{i}, source #{indices[i]}" for i in expected]
    assert diffraction[-1] == "diffraction #63, source #1070"


def test_the_object_panels_show_the_fixture_positions_over_the_lighter_source_positions(
    rendered: Rendered,
) -> None:
    arrays = rendered.view.arrays
    scan = synthetic_scan()
    for title in OBJECT_PANELS:
        source, fixture = scatter_offsets(panel(rendered, title))
        assert np.array_equal(source, np.column_stack([scan.xcoords, scan.ycoords]))
        assert np.array_equal(fixture, np.column_stack([arrays["xcoords"], arrays["ycoords"]]))
    legend = panel(rendered, OBJECT_PANELS[0]).get_legend()
    assert legend is not None
    assert [text.get_text() for text in legend.get_texts()] == [
        "source (1087)",
        "8x8 cells",
        "fixture (64)",
        "area the patches read",
    ]


def test_the_title_gives_name_shapes_dtypes_coverage_and_a_short_digest(
    rendered: Rendered, default_fixture: Path
) -> None:
    suptitle = rendered.figure.get_suptitle()
    digest = load_npz(default_fixture).content_sha256
    assert suptitle.splitlines()[0] == (
        f"minimal_dataset_v1.npz   content_sha256 {digest[:12]} (matches its sidecar)"
    )
    for fragment in (
        "diffraction 64x64x64 float32",
        "probeGuess 64x64 complex64",
        "objectGuess 227x226 complex64",
        "xcoords 64 float64",
        "64 of 1087 positions (stratified) from builtin:synthetic-run1084",
        "coverage x 99.2%, y 98.1%",
        "log scale",
    ):
        assert fragment in suptitle


def test_the_same_fixture_gives_the_same_bytes(rendered: Rendered, tmp_path: Path) -> None:
    again = render_fixture(rendered.view.path, tmp_path / "again.png")
    assert again.output.read_bytes() == rendered.output.read_bytes()


def test_the_committed_picture_in_docs_is_the_current_rendering_of_the_builtin_default(
    rendered: Rendered,
) -> None:
    # Regenerate with the commands in README.md if this fails after a change to the figure.
    assert DOCS_PICTURE.stat().st_size < 300_000
    committed, fresh = picture(DOCS_PICTURE), picture(rendered.output)
    assert committed.shape == fresh.shape
    # Not bytes: another matplotlib may place a glyph one pixel over.
    assert float(np.abs(committed - fresh).mean()) < 0.01


# -- sidecar and source ---------------------------------------------------------------


def test_the_builtin_default_without_a_sidecar_beside_it_is_described_by_the_shipped_one(
    default_fixture: Path, tmp_path: Path
) -> None:
    alone = tmp_path / "minimal_dataset_v1.npz"
    shutil.copyfile(default_fixture, alone)
    shown = render_fixture(alone, tmp_path / "alone.png")
    assert shown.view.sidecar == SHIPPED_SIDECAR
    assert shown.view.matches_sidecar is True
    assert shown.view.source_positions is not None


def test_a_relative_source_is_found_from_the_project_rootdir(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "datasets").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\n", encoding="utf-8")
    write_source(project / "datasets" / "scan.npz")
    (project / "tests").mkdir()
    result = subprocess.run(
        [*cli_command(), "generate", "--source", "datasets/scan.npz", "--output",
         "tests/f.npz", "--subset-size", "20"],
        cwd=project, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = run_cli("show", project / "tests" / "f.npz", "--output", "f.png", cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "wrote f.png",
        f"sidecar         {project / 'tests' / 'f.json'} (content_sha256 matches)",
        f"source positions: {project / 'datasets' / 'scan.npz'}",
    ]
    assert picture(elsewhere / "f.png").shape == (HEIGHT, WIDTH, 3)


def test_a_source_that_cannot_be_found_is_named_and_the_rest_is_drawn(tmp_path: Path) -> None:
    source = write_source(tmp_path / "scan.npz")
    fixture = generate_fixture(source, tmp_path / "f.npz", 20).output_path
    source.unlink()
    shown = render_fixture(fixture, tmp_path / "f.png")
    assert shown.view.source_positions is None
    assert shown.view.source_note.startswith(f"source positions not shown: {source} not found")
    assert len(titles(shown)) == 12
    assert "coverage x " in shown.figure.get_suptitle()
    (only,) = scatter_offsets(panel(shown, OBJECT_PANELS[0]))
    assert only.shape == (20, 2)


def test_a_fixture_without_sidecar_is_drawn_and_the_title_says_so(tmp_path: Path) -> None:
    fixture = generate_fixture(write_source(tmp_path / "scan.npz"), tmp_path / "f.npz", 20)
    fixture.metadata_path.unlink()
    shown = render_fixture(fixture.output_path, tmp_path / "f.png")
    assert shown.view.sidecar is None
    suptitle = shown.figure.get_suptitle()
    assert "(no sidecar)" in suptitle
    assert "coverage unknown (no source)" in suptitle
    assert shown.view.source_note == "source positions not shown: no sidecar names the source"


# -- the command ----------------------------------------------------------------------


def test_show_prints_what_it_wrote_and_works_headless_without_pyplot(
    default_fixture: Path, tmp_path: Path
) -> None:
    script = (
        "import sys\n"
        "from pytest_ptycho_fixture.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "print('pyplot imported' if 'matplotlib.pyplot' in sys.modules else 'no pyplot')\n"
        "sys.exit(status)\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "MPLBACKEND")}
    # An interactive backend is asked for but there is no display: only Agg may be used.
    env["MPLBACKEND"] = "TkAgg"
    result = subprocess.run(
        [sys.executable, "-c", script, "show", str(default_fixture), "--output", "f.png"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "wrote f.png",
        f"sidecar         {default_fixture.with_suffix('.json')} (content_sha256 matches)",
        "source positions: builtin:synthetic-run1084",
        "no pyplot",
    ]
    assert picture(tmp_path / "f.png").shape == (HEIGHT, WIDTH, 3)


def test_show_refuses_a_file_that_is_not_a_fixture_with_one_line(tmp_path: Path) -> None:
    source = write_source(tmp_path / "scan.npz")
    out = tmp_path / "out"
    out.mkdir()
    line = one_error_line(run_cli("show", source, "--output", out / "f.png"))
    assert line == (
        f"ptycho-fixture: error: {source}: 'diffraction' has dtype float64 but float32 is required"
    )
    assert folder_entries(out) == []


def test_show_refuses_a_missing_fixture_and_leaves_no_folder_for_its_output(
    tmp_path: Path,
) -> None:
    nowhere = tmp_path / "nowhere" / "f.png"
    missing = one_error_line(run_cli("show", tmp_path / "none.npz", "--output", nowhere))
    assert missing == f"ptycho-fixture: error: {tmp_path / 'none.npz'}: does not exist"
    assert not nowhere.parent.exists()


def test_without_matplotlib_show_says_how_to_install_it_and_exits_2(
    default_fixture: Path, tmp_path: Path
) -> None:
    blocked = subprocess.run(
        [sys.executable, "-c", NO_MATPLOTLIB, "--try-import"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "ModuleNotFoundError: No module named 'matplotlib'" in blocked.stderr
    result = run_cli(
        "show", default_fixture, "--output", tmp_path / "f.png",
        command=[sys.executable, "-c", NO_MATPLOTLIB],
    )  # fmt: skip
    assert one_error_line(result) == (
        "ptycho-fixture: error: the show command needs matplotlib, an optional extra:"
        " pip install pytest-ptycho-fixture[plot]"
    )
    assert result.stdout == ""
    assert folder_entries(tmp_path) == []


def test_the_object_panels_draw_the_8x8_grid_whose_occupied_cells_the_title_counts(
    rendered: Rendered,
) -> None:
    from matplotlib.collections import LineCollection

    scan = synthetic_scan()
    x_edges = np.linspace(scan.xcoords.min(), scan.xcoords.max(), 9)
    y_edges = np.linspace(scan.ycoords.min(), scan.ycoords.max(), 9)
    for title in OBJECT_PANELS:
        lines = [
            segment
            for item in panel(rendered, title).collections
            if isinstance(item, LineCollection)
            for segment in item.get_segments()
        ]
        vertical = sorted(float(s[0][0]) for s in lines if s[0][0] == s[1][0])
        horizontal = sorted(float(s[0][1]) for s in lines if s[0][1] == s[1][1])
        assert np.allclose(vertical, x_edges) and np.allclose(horizontal, y_edges)
    cells = rendered.view.metadata["coverage"]["cells_8x8"]  # type: ignore[index]
    assert f", {cells} of 64 cells" in rendered.figure.texts[0].get_text()
