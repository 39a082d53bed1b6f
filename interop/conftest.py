"""What every test of the client codes shares: torch on one thread, the client packages'
known warnings, and the built-in fixture written to files as ``ptycho-fixture generate``
writes it.

The suite runs under ``pytest -W error``, which outranks ini filters; so each known
warning is added to every test here as a ``filterwarnings`` mark, which outranks ``-W``.
Any other warning still fails the run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from pytest_ptycho_fixture import generate_fixture

HERE = Path(__file__).resolve().parent

#: The warnings the client packages raise that are known to be harmless, each filtered
#: where it is raised (``action:message:category:module``).
KNOWN_WARNINGS = (
    # torch, raised once per process while pty-chi 2.2.0 builds a PtychographyTask: the
    # bounding box of the scanned region (ptychi/data_structures/object.py) is made from
    # the extremes of the probe positions, a parameter that requires grad, and stored as
    # a constant buffer through Python floats. No gradient is meant to flow through the
    # box, so nothing is lost by the conversion.
    "ignore:Converting a tensor with requires_grad=True to a scalar:UserWarning:torch.utils._device",
)

# With two threads on a busy two-core machine, OpenMP's spin-waiting made the same
# reconstructions 10 to 20 times slower; one thread gives the same figures.
torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            for known in KNOWN_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(known))


@pytest.fixture(scope="session")
def fixture_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in fixture, with its sidecar beside it (``.json``)."""
    folder = tmp_path_factory.mktemp("fixture")
    return generate_fixture(None, folder / "minimal_dataset_v1.npz").output_path


@pytest.fixture(scope="session")
def fixture_arrays(fixture_npz: Path) -> Mapping[str, NDArray[Any]]:
    """The arrays of :func:`fixture_npz`, by key."""
    with np.load(fixture_npz) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="session")
def fixture_geometry(fixture_npz: Path) -> Mapping[str, Any]:
    """The sidecar's ``geometry``: energy, distance, detector and object pixel, centre."""
    sidecar = json.loads(fixture_npz.with_suffix(".json").read_text())
    geometry: Mapping[str, Any] = sidecar["geometry"]
    return geometry
