"""The built-in default fixture is bit-identical everywhere: numpy 1.26 and 2.x, any SIMD level.

The tox envs ``numpy1`` and ``numpy2`` run this file (``-m golden``).

To recompute the constants after an intended change to the simulator or the generator::

    ptycho-fixture generate --output /tmp/minimal_dataset_v1.npz   # prints content_sha256
    python -c "from pytest_ptycho_fixture import simulate_source, content_digests; \
print(content_digests(simulate_source())[0])"                     # the full source
    ptycho-fixture simulate --output /tmp/source.npz &&
    python -c "from pytest_ptycho_fixture.npz.reader import NpzReader; \
print(NpzReader('/tmp/source.npz').fingerprint())"                # its fingerprint

then copy the new sidecar to ``pytest_ptycho_fixture/data/minimal_dataset_v1.json``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.digests import content_digests
from pytest_ptycho_fixture.npz.reader import NpzReader, load_npz
from pytest_ptycho_fixture.npz.writer import write_npz
from pytest_ptycho_fixture.simulate import simulate_source
from pytest_ptycho_fixture.sources.builtin import (
    SYNTHETIC_SOURCE_CONTENT_SHA256,
    SYNTHETIC_SOURCE_FINGERPRINT,
)

pytestmark = pytest.mark.golden

GOLDEN_CONTENT_SHA256 = "fb14020c26b228c399f3717069b42c677ea8bb66094e1bba90798d3131802d93"
GOLDEN_SOURCE_CONTENT_SHA256 = "baa884e4ddd3cfafb94e1f1c0180ef2db71cb9b6c2ef4a94868da2a2c3827a32"
GOLDEN_SOURCE_FINGERPRINT = "a3c477d589eab5b1920b573796a1c1088a274f5936bfabb095c4379a06f8ef7a"

_DIGEST_SCRIPT = """
import sys, tempfile, pathlib
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz
out = pathlib.Path(tempfile.mkdtemp()) / "fixture.npz"
generate_fixture(None, out)
print(load_npz(out).content_sha256)
"""


def _dispatched_features() -> list[str]:
    # Imported by name: the module is private, in no type stub, and moved in numpy 2.
    try:
        umath = importlib.import_module("numpy._core._multiarray_umath")
    except ImportError:  # numpy 1.x
        umath = importlib.import_module("numpy.core._multiarray_umath")
    return list(umath.__cpu_dispatch__)


def test_the_built_in_default_fixture_has_the_golden_content_digest(tmp_path: Path) -> None:
    result = generate_fixture(None, tmp_path / "minimal_dataset_v1.npz")
    loaded = load_npz(result.output_path)
    assert loaded.content_sha256 == GOLDEN_CONTENT_SHA256, f"numpy {np.__version__}"
    sidecar = json.loads(result.metadata_path.read_text())
    assert sidecar["content_sha256"] == GOLDEN_CONTENT_SHA256
    assert sidecar["source_content_sha256"] == GOLDEN_SOURCE_CONTENT_SHA256
    assert sidecar["source_fingerprint"] == GOLDEN_SOURCE_FINGERPRINT


#: The ``spread`` subset of the built-in source: the grid rule and its float64 arithmetic.
GOLDEN_SPREAD_CONTENT_SHA256 = "418842225075bccdf5d8b2bf572e703d9b14fefcc1f12df61c3bc8775492ed9b"


#: The ``groups`` subset (gridsize 2) of the built-in source, with its groups array.
GOLDEN_GROUPS_CONTENT_SHA256 = "9d75dd41f75d1c7d632855ead7ce4dc5e7c29a3b9d621f5e9a9e29be5113dfaa"


@pytest.mark.parametrize(
    ("strategy", "golden"),
    [("spread", GOLDEN_SPREAD_CONTENT_SHA256), ("groups", GOLDEN_GROUPS_CONTENT_SHA256)],
)
def test_the_spread_and_groups_fixtures_of_the_built_in_source_have_their_golden_digests(
    tmp_path: Path, strategy: str, golden: str
) -> None:
    result = generate_fixture(None, tmp_path / f"{strategy}.npz", strategy=strategy)
    assert load_npz(result.output_path).content_sha256 == golden, f"numpy {np.__version__}"


def test_the_shipped_sidecar_records_the_golden_digest_and_its_arrays(tmp_path: Path) -> None:
    shipped = resources.files("pytest_ptycho_fixture") / "data" / "minimal_dataset_v1.json"
    sidecar = json.loads(shipped.read_text(encoding="utf-8"))
    assert sidecar["content_sha256"] == GOLDEN_CONTENT_SHA256
    loaded = load_npz(generate_fixture(None, tmp_path / "x.npz").output_path)
    assert {key: entry["sha256"] for key, entry in sidecar["arrays"].items()} == (
        loaded.array_sha256
    )


def test_the_full_synthetic_source_has_the_recorded_content_digest_and_fingerprint(
    tmp_path: Path,
) -> None:
    # generate.py recognises the built-in source by these two values; both are computed
    # here from what the simulator makes, against the module's constants and the pins.
    source = simulate_source()
    digest = content_digests(source)[0]
    assert digest == SYNTHETIC_SOURCE_CONTENT_SHA256
    assert digest == GOLDEN_SOURCE_CONTENT_SHA256
    # What `ptycho-fixture simulate` writes, compressed or not.
    for compress in (True, False):
        write_npz(tmp_path / "source.npz", source, compress=compress)
        with NpzReader(tmp_path / "source.npz") as reader:
            fingerprint = reader.fingerprint()
        assert fingerprint == SYNTHETIC_SOURCE_FINGERPRINT
        assert fingerprint == GOLDEN_SOURCE_FINGERPRINT


def test_the_golden_digest_holds_with_simd_dispatch_disabled() -> None:
    features = _dispatched_features()
    assert features, "this numpy dispatches no optional CPU features"
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(features)}
    env.pop("PYTHONWARNINGS", None)
    probe = subprocess.run(
        [sys.executable, "-c", "import numpy as np; print(np.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cannot disable" not in probe.stderr.lower(), probe.stderr
    result = subprocess.run(
        [sys.executable, "-c", _DIGEST_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == GOLDEN_CONTENT_SHA256


def test_the_default_fixture_satisfies_the_documented_forward_model(tmp_path: Path) -> None:
    from pytest_ptycho_fixture.simulate import forward

    f = load_npz(generate_fixture(None, tmp_path / "x.npz").output_path).arrays
    model = forward(f["probeGuess"], f["objectGuess"], f["xcoords"], f["ycoords"])
    assert np.abs(model - f["diffraction"]).max() <= 1e-6 * model.max()
    assert 1.5 < float(model.max()) < 1.9
