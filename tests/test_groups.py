"""The ``groups`` strategy: gridsize groups of true nearest neighbours that PtychoPINN's
``4_quadrant`` grouping finds around every seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run1084_shaped_scan, run_cli, write_run1084_shaped_source
from numpy.typing import NDArray

from pytest_ptycho_fixture.contract import ContractError, validate_fixture
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.simulate import synthetic_scan
from pytest_ptycho_fixture.spec import OptionError

Scan = tuple[NDArray[np.float64], NDArray[np.float64]]

#: PtychoPINN's DataConfig defaults for its 4_quadrant grouping (ptycho_torch/config_params.py).
MAX_NEIGHBOR_DISTANCE = 3.0
MIN_NEIGHBOR_DISTANCE = 0.0
K_QUADRANT = 30


def _scan(name: str) -> Scan:
    if name == "built-in":
        built_in = synthetic_scan()
        return built_in.xcoords, built_in.ycoords
    return run1084_shaped_scan()


def _source(tmp_path: Path, name: str) -> Path | None:
    if name == "built-in":
        return None
    return write_run1084_shaped_source(tmp_path / "run1084.npz")


def _fixture(tmp_path: Path, name: str, strategy: str = "groups") -> dict[str, object]:
    result = generate_fixture(
        _source(tmp_path, name), tmp_path / f"{strategy}.npz", strategy=strategy
    )
    sidecar: dict[str, object] = json.loads(result.metadata_path.read_text(encoding="utf-8"))
    sidecar["arrays_loaded"] = load_npz(result.output_path).arrays
    return sidecar


def _nearest(x: NDArray[np.float64], y: NDArray[np.float64], i: int, k: int) -> list[int]:
    """The k nearest other positions to i over the whole scan: squared distance, then index."""
    d = (x - x[i]) ** 2 + (y - y[i]) ** 2
    d[i] = np.inf
    return [int(j) for j in np.lexsort((np.arange(x.size), d))[:k]]


def _median_nearest_distance(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def _quadrant_group_forms(x: NDArray[np.float64], y: NDArray[np.float64], centre: int) -> bool:
    """PtychoPINN's get_fixed_quadrant_neighbors_c4 for one centre, Isotropic scan pattern,
    its default distances, written again from its description: among the K_quadrant
    nearest other positions with MIN <= distance < MAX, sort each into TL (-10 < dx < 0 <
    dy < 10), TR (0 < dx < 10, 0 < dy < 10), BL (-10 < dx < 0, dy < 0) or BR (0 < dx < 10,
    dy < 0); the centre is added to every quadrant, and the group forms unless two or
    more quadrants hold the centre alone."""
    d = np.hypot(x - x[centre], y - y[centre])
    d[centre] = np.inf
    order = np.argsort(d, kind="stable")[:K_QUADRANT]
    counts = dict.fromkeys(("TL", "TR", "BL", "BR"), 0)
    for j in order:
        if not MIN_NEIGHBOR_DISTANCE <= d[j] < MAX_NEIGHBOR_DISTANCE:
            continue
        dx, dy = x[j] - x[centre], y[j] - y[centre]
        if -10 < dx < 0 and 0 < dy < 10:
            counts["TL"] += 1
        elif 0 < dx < 10 and 0 < dy < 10:
            counts["TR"] += 1
        elif -10 < dx < 0 and dy < 0:
            counts["BL"] += 1
        elif 0 < dx < 10 and dy < 0:
            counts["BR"] += 1
    return sum(1 for count in counts.values() if count == 0) < 2


@pytest.mark.parametrize("name", ["built-in", "Run1084-shaped"])
def test_every_group_is_a_seed_and_its_true_nearest_neighbours_in_the_full_scan(
    tmp_path: Path, name: str
) -> None:
    x, y = _scan(name)
    sidecar = _fixture(tmp_path, name)
    subset = sidecar["subset_indices"]
    groups = sidecar["groups"]
    assert isinstance(subset, list) and isinstance(groups, list)
    assert sidecar["gridsize"] == 2 and len(groups) == 16
    for group in groups:
        members = [subset[k] for k in group]
        assert members[1:] == _nearest(x, y, members[0], 3), group
    # Inside the fixture a position's nearest neighbour is one scan step away, as in the
    # scan itself; a stratified fixture's is several steps away.
    arrays = sidecar["arrays_loaded"]
    assert isinstance(arrays, dict)
    inside = _median_nearest_distance(arrays["xcoords"], arrays["ycoords"])
    assert inside <= 1.5 * _median_nearest_distance(x, y)


@pytest.mark.parametrize("name", ["built-in", "Run1084-shaped"])
def test_a_stratified_fixture_fails_the_same_nearest_neighbour_check(
    tmp_path: Path, name: str
) -> None:
    x, y = _scan(name)
    arrays = _fixture(tmp_path, name, "stratified")["arrays_loaded"]
    assert isinstance(arrays, dict)
    inside = _median_nearest_distance(arrays["xcoords"], arrays["ycoords"])
    assert inside > 1.5 * _median_nearest_distance(x, y)


@pytest.mark.parametrize("name", ["built-in", "Run1084-shaped"])
def test_ptychopinns_4_quadrant_grouping_forms_a_group_around_every_seed(
    tmp_path: Path, name: str
) -> None:
    sidecar = _fixture(tmp_path, name)
    arrays = sidecar["arrays_loaded"]
    groups = sidecar["groups"]
    assert isinstance(arrays, dict) and isinstance(groups, list)
    x, y = arrays["xcoords"], arrays["ycoords"]
    assert all(_quadrant_group_forms(x, y, group[0]) for group in groups)


def test_around_the_stratified_fixtures_positions_no_4_quadrant_group_forms(
    tmp_path: Path,
) -> None:
    arrays = _fixture(tmp_path, "built-in", "stratified")["arrays_loaded"]
    assert isinstance(arrays, dict)
    x, y = arrays["xcoords"], arrays["ycoords"]
    assert not any(_quadrant_group_forms(x, y, i) for i in range(x.size))


def test_the_groups_are_in_the_npz_and_the_sidecar_and_hold_every_position_once(
    tmp_path: Path,
) -> None:
    sidecar = _fixture(tmp_path, "built-in")
    arrays = sidecar["arrays_loaded"]
    assert isinstance(arrays, dict)
    assert arrays["groups"].dtype == np.int64 and arrays["groups"].shape == (16, 4)
    assert arrays["groups"].tolist() == sidecar["groups"]
    assert sorted(arrays["groups"].ravel().tolist()) == list(range(64))
    assert "groups" not in _fixture(tmp_path / "other", "built-in", "spread")


def test_the_contract_refuses_groups_that_repeat_or_miss_a_position(tmp_path: Path) -> None:
    arrays = dict(_fixture(tmp_path, "built-in")["arrays_loaded"])  # type: ignore[call-overload]
    repeated = arrays["groups"].copy()
    repeated[0, 1] = repeated[0, 0]
    with pytest.raises(ContractError, match="must hold each of the 64 fixture indices exactly"):
        validate_fixture("f.npz", {**arrays, "groups": repeated})
    with pytest.raises(ContractError, match="int64 array is required"):
        validate_fixture("f.npz", {**arrays, "groups": arrays["groups"].astype(np.int32)})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"strategy": "groups", "gridsize": 3},
            (
                "gridsize: 3 is not a gridsize for 64 positions: expected one whose square divides"
                " the subset size (9 does not divide 64)"
            ),
        ),
        (
            {"strategy": "spread", "gridsize": 2},
            (
                "gridsize: 2 is not a setting for this strategy: expected no gridsize, or the"
                " groups strategy"
            ),
        ),
        (
            {"strategy": "groups", "gridsize": 0},
            "gridsize: 0 is not a gridsize: expected a whole number >= 1, e.g. 2 for 2x2 groups",
        ),
    ],
)
def test_a_gridsize_that_does_not_fit_is_refused_before_anything_is_read(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(OptionError) as caught:
        generate_fixture(tmp_path / "missing.npz", tmp_path / "f.npz", **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_makes_gridsize_groups_and_refuses_a_size_they_do_not_divide(
    tmp_path: Path,
) -> None:
    made = run_cli(
        "generate",
        "--output",
        tmp_path / "g.npz",
        "--subset-strategy",
        "groups",
        "--gridsize",
        "4",
    )
    assert made.returncode == 0, made.stderr
    assert "groups          4 of 4x4, seed first\n" in made.stdout
    assert load_npz(tmp_path / "g.npz").arrays["groups"].shape == (4, 16)
    refused = run_cli(
        "generate",
        "--output",
        tmp_path / "h.npz",
        "--subset-strategy",
        "groups",
        "--subset-size",
        "18",
    )
    assert refused.returncode == 2
    assert refused.stderr == (
        "ptycho-fixture: error: --gridsize: 2 is not a gridsize for 18 positions: expected"
        " one whose square divides the subset size (4 does not divide 18)\n"
    )
    assert not (tmp_path / "h.npz").exists()
