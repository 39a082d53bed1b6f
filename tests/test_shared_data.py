"""Mutation of the shared session data: every in-place change to a session tensor fails the
test that made it, naming the tensor, and the tests that follow see the verified data; the
numpy arrays cannot be written or made writable again."""

from __future__ import annotations

import pytest
import torch

pytest_plugins = ["pytester"]

#: Where ``ptycho_device = auto`` puts the session tensors on this machine.
DEVICE = "cuda:0" if torch.cuda.is_available() else "cpu"

#: Each in-place change a test might make, as the body of a test function.
MUTATIONS = {
    "add_": ("diffraction", "ptycho_tensors.diffraction.add_(1)"),
    "setitem": ("probe", "ptycho_tensors.probe[0, 0] = 0"),
    "copy_": ("coords", "ptycho_tensors.coords.copy_(torch.zeros_like(ptycho_tensors.coords))"),
    "zero_": ("object", "ptycho_tensors.object.zero_()"),
    "mul_": ("xcoords_start", "ptycho_tensors.xcoords_start.mul_(2)"),
    "no_grad": (
        "ycoords_start",
        "with torch.no_grad():\n        ptycho_tensors.ycoords_start.sub_(1)",
    ),
    "view": ("diffraction", "ptycho_tensors.diffraction[3].fill_(0)"),
    "detach": ("object", "ptycho_tensors.object.detach().mul_(2)"),
    "out": ("probe", "torch.mul(ptycho_tensors.probe, 2, out=ptycho_tensors.probe)"),
    # Writes that bypass torch's in-place counter are caught by comparing bytes.
    "data": ("object", "ptycho_tensors.object.data.mul_(2)"),
    "dlpack": ("object", "torch.from_dlpack(ptycho_tensors.object).mul_(2)"),
    # A change that torch.equal cannot see: the probe's zeros, with their signs flipped.
    "signed_zero": (
        "probe",
        (
            "zeros = ptycho_tensors.probe == 0\n    assert zeros.any()\n"
            "    view = torch.from_dlpack(ptycho_tensors.probe)\n    view[zeros] = -view[zeros]"
        ),
    ),
}
if DEVICE == "cpu":
    # A numpy view shares memory only with a tensor on the CPU.
    MUTATIONS["numpy"] = ("diffraction", "ptycho_tensors.diffraction.numpy()[0, 0, 0] = 5")

CHECK = """
def test_after_{name}(ptycho_tensors, ptycho_arrays, ptycho_metadata, ptycho_fixture_path):
    verified(ptycho_tensors, ptycho_arrays, ptycho_metadata, ptycho_fixture_path)
"""

HEADER = """
import numpy as np
import pytest
import torch

from pytest_ptycho_fixture import content_digests


def verified(tensors, arrays, metadata, path):
    with np.load(path) as data:
        disk = {key: data[key] for key in data.files}
    assert content_digests(disk)[0] == metadata["content_sha256"]
    assert content_digests(arrays)[0] == metadata["content_sha256"]
    pairs = {
        "diffraction": disk["diffraction"],
        "probe": disk["probeGuess"],
        "object": disk["objectGuess"],
        "coords": np.stack([disk["xcoords"], disk["ycoords"]], axis=1),
        "xcoords_start": disk["xcoords_start"],
        "ycoords_start": disk["ycoords_start"],
    }
    for name, expected in pairs.items():
        assert torch.equal(getattr(tensors, name).cpu(), torch.from_numpy(expected)), name


@pytest.fixture
def changes_in_teardown(ptycho_tensors):
    yield
    ptycho_tensors.coords.add_(1)


def test_a_fixture_that_changes_them_in_its_teardown(changes_in_teardown):
    pass


def test_after_the_teardown(ptycho_tensors, ptycho_arrays, ptycho_metadata, ptycho_fixture_path):
    verified(ptycho_tensors, ptycho_arrays, ptycho_metadata, ptycho_fixture_path)


@pytest.mark.parametrize("key", ["diffraction", "diff3d", "probeGuess", "objectGuess", "xcoords"])
def test_the_arrays_stay_read_only(ptycho_arrays, key):
    array = ptycho_arrays[key]
    assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        array[(0,) * array.ndim] = 0
    with pytest.raises(ValueError, match="read-only"):
        array += 1
    with pytest.raises(ValueError, match="read-only"):
        np.copyto(array, 0)
    # Neither the array nor any array it is a view of can be made writable again.
    while isinstance(array, np.ndarray):
        with pytest.raises(ValueError, match="WRITEABLE"):
            array.flags.writeable = True
        array = array.base
    assert not ptycho_arrays[key].flags.writeable
"""


def test_every_in_place_change_fails_its_test_and_the_next_test_sees_the_verified_data(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -W error")
    body = [HEADER]
    for name, (_, change) in MUTATIONS.items():
        body.append(f"\ndef test_change_{name}(ptycho_tensors):\n    {change}\n")
        body.append(CHECK.format(name=name))
    pytester.makepyfile(test_shared="".join(body))
    result = pytester.runpytest("-p", "no:randomly", "-rfE")
    result.assert_outcomes(passed=len(MUTATIONS) + 7, failed=len(MUTATIONS), errors=1)
    for name, (field, _) in MUTATIONS.items():
        result.stdout.fnmatch_lines(
            [
                (
                    f"*test_shared.py::test_change_{name} modified the shared session tensor"
                    f" ptycho_tensors.{field} ({DEVICE}) in place. Every test gets the same session"
                    " tensors, so they were restored from * for the tests that follow; request"
                    " the ptycho_batch fixture instead*"
                )
            ]
        )
    result.stdout.fnmatch_lines(
        [
            (
                "*test_shared.py::test_a_fixture_that_changes_them_in_its_teardown modified the"
                f" shared session tensor ptycho_tensors.coords ({DEVICE}) in place.*"
            )
        ]
    )
