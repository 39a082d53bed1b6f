"""The sdist and the wheel that ``python -m build`` makes are complete and pass ``twine check``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
#: What a working tree holds that is not the project's source.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".tox", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache",
    ".hypothesis", "*.npz", "*.lock",
)  # fmt: skip


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from it, as ``python -m build`` makes them."""
    tree = tmp_path_factory.mktemp("tree") / "pytest-ptycho-fixture"
    shutil.copytree(ROOT, tree, ignore=_NOT_SOURCE)
    out = tree / "dist"
    # Without isolation the build uses this environment's setuptools: no index needed.
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_twine_check_passes_on_the_sdist_and_the_wheel(dist: Path) -> None:
    files = [str(_only(dist, "*.tar.gz")), str(_only(dist, "*.whl"))]
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_the_sdist_holds_the_tests_and_the_shipped_sidecar(dist: Path) -> None:
    with tarfile.open(_only(dist, "*.tar.gz")) as sdist:
        names = {name.partition("/")[2] for name in sdist.getnames()}
    tests = {str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("*.py")}
    assert tests and tests <= names, sorted(tests - names)
    assert "src/pytest_ptycho_fixture/data/minimal_dataset_v1.json" in names
    assert {"tox.ini", "constraints.txt", "docs/fixture.png", "mkdocs.yml", "CHANGELOG.md"} <= names
    assert "examples/ptychography_project/tests/test_reconstruction.py" in names
    assert not [name for name in names if name.endswith((".npz", ".pyc"))]


def test_the_wheel_holds_py_typed_the_sidecar_and_the_plugin_entry_point(dist: Path) -> None:
    with zipfile.ZipFile(_only(dist, "*.whl")) as wheel:
        names = set(wheel.namelist())
        entry_points = next(name for name in names if name.endswith("entry_points.txt"))
        declared = wheel.read(entry_points).decode()
    assert "pytest_ptycho_fixture/py.typed" in names
    assert "pytest_ptycho_fixture/data/minimal_dataset_v1.json" in names
    source = ROOT / "src"
    modules = {str(path.relative_to(source)) for path in source.rglob("*.py")}
    assert modules and modules <= names, sorted(modules - names)
    assert not [name for name in names if name.startswith("tests/")]
    assert "ptycho_fixture = pytest_ptycho_fixture.plugin" in declared
    assert "ptycho-fixture = pytest_ptycho_fixture.cli:run" in declared
