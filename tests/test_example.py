"""The worked example in examples/ptychography_project runs and passes, so it cannot rot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_ptycho_fixture.devices import cuda_count
from pytest_ptycho_fixture.spec import SHIPPED_SIDECAR

EXAMPLE = Path(__file__).parent.parent / "examples" / "ptychography_project"
FIXTURE = Path("tests/fixtures/pytorch_integration/minimal_dataset_v1.npz")
TESTS = (
    "test_the_fixture_is_reproduced_by_the_forward_model_with_the_true_object",
    "test_gradient_descent_from_a_flat_object_lowers_the_fourier_error_tenfold",
    "test_the_recovered_object_matches_the_truth_where_the_probe_lit_it",
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the example, as a clone of it has: the sidecar but no NPZ."""
    copy = tmp_path / "ptychography_project"
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.npz", "*.lock", ".*.tmp")
    shutil.copytree(EXAMPLE, copy, ignore=ignore)
    return copy


def test_the_example_project_generates_its_fixture_and_passes_on_every_device(
    project: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-W", "error"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    devices = ["cpu", *(f"cuda:{index}" for index in range(cuda_count()))]
    lines = result.stdout.splitlines()
    for test in TESTS:
        for device in devices:
            assert any(f"::{test}[{device}] PASSED" in line for line in lines), result.stdout
    assert f"{len(TESTS) * len(devices)} passed" in lines[-1]
    assert any(
        line.startswith(f"ptycho-fixture: {FIXTURE}, sidecar {FIXTURE.with_suffix('.json')},")
        for line in lines
    ), result.stdout
    assert any(
        line.startswith("ptycho-fixture: 1 generation (main, ") and "1 verification" in line
        for line in lines
    ), result.stdout
    assert (project / FIXTURE).is_file()


def test_the_committed_sidecar_of_the_example_is_the_builtin_default() -> None:
    committed = json.loads((EXAMPLE / FIXTURE.with_suffix(".json")).read_text(encoding="utf-8"))
    shipped = json.loads(SHIPPED_SIDECAR.read_text(encoding="utf-8"))
    assert committed["content_sha256"] == shipped["content_sha256"]
    assert committed["arrays"] == shipped["arrays"]
    assert committed["source_dataset"] == "builtin:synthetic-run1084"


def test_the_example_commits_the_sidecar_but_ignores_the_generated_npz() -> None:
    ignored = (EXAMPLE / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert f"/{FIXTURE}" in ignored
    assert f"/{FIXTURE.parent}/*.lock" in ignored
