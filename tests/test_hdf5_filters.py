"""HDF5 sources compressed as detectors write them (bitshuffle/LZ4, LZ4, Zstd), read through
hdf5plugin: the same fixture as the same counts stored plainly, through the API and the
command line; one line with the install command where hdf5plugin is missing; and the
size checks, which must not call a legitimately compressed dark run hostile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import pytest
from h5files import DATA, DETECTOR, nhw_arrays, write_cxi
from helpers import folder_entries, one_error_line, run_cli
from numpy.typing import NDArray

from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.sources import hdf5read
from pytest_ptycho_fixture.sources.hdf5read import H5Reader

#: The filters detectors write, as ``create_dataset`` keywords, and their HDF5 filter ids.
FILTERS: dict[str, tuple[Callable[[], Any], int]] = {
    # Eiger's default: bitshuffle, then LZ4, on blocks chosen by the filter.
    "bitshuffle": (lambda: hdf5plugin.Bitshuffle(nelems=0, cname="lz4"), 32008),
    "lz4": (lambda: hdf5plugin.LZ4(), 32004),
}
INSTALL = "pip install 'pytest-ptycho-fixture[hdf5]'"


def counts() -> NDArray[Any]:
    """Photon counts of the simulator's scan, as an Eiger gives them: uint32, mostly zeros,
    a bright centre."""
    intensities = nhw_arrays()["diffraction"] ** 2 * 256
    return np.random.default_rng(0).poisson(intensities).astype("<u4")


def write_counts(path: Path, frames: NDArray[Any], compression: str | None = None) -> Path:
    """A CXI file of ``frames``: stored plainly, or one frame a chunk through a filter."""

    def data(f: h5py.File) -> None:
        if compression is None:
            f.create_dataset(DATA, data=frames)
        else:
            options = FILTERS[compression][0]()
            f.create_dataset(DATA, data=frames, chunks=(1, *frames.shape[1:]), **options)

    return write_cxi(path, data=data)


def filter_ids(path: Path) -> list[int]:
    with h5py.File(path, "r") as f:
        plist = f[DATA].id.get_create_plist()
        return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def content_sha256(output: Path) -> str:
    digest: str = json.loads(output.with_suffix(".json").read_text())["content_sha256"]
    return digest


@pytest.fixture(scope="module")
def frames() -> NDArray[Any]:
    return counts()


# ------------------------------------------------------------------ with hdf5plugin


@pytest.mark.parametrize("compression", sorted(FILTERS))
def test_compressed_counts_give_the_fixture_of_the_same_counts_stored_plainly(
    compression: str, frames: NDArray[Any], tmp_path: Path
) -> None:
    plain = write_counts(tmp_path / "plain.cxi", frames)
    packed = write_counts(tmp_path / "packed.cxi", frames, compression)
    assert filter_ids(packed) == [FILTERS[compression][1]]
    assert packed.stat().st_size < plain.stat().st_size
    a = generate_fixture(plain, tmp_path / "a.npz")
    b = generate_fixture(packed, tmp_path / "b.npz")
    c = generate_fixture(packed, tmp_path / "c.npz", verify_source=True)
    assert content_sha256(b.output_path) == content_sha256(a.output_path)
    assert content_sha256(c.output_path) == content_sha256(a.output_path)


@pytest.mark.parametrize("compression", sorted(FILTERS))
def test_generate_on_the_command_line_reads_compressed_counts_as_plain_ones(
    compression: str, frames: NDArray[Any], tmp_path: Path
) -> None:
    plain = write_counts(tmp_path / "plain.cxi", frames)
    packed = write_counts(tmp_path / "packed.cxi", frames, compression)
    digests = []
    for source, out, *verify in (
        (plain, tmp_path / "a.npz"),
        (packed, tmp_path / "b.npz"),
        (packed, tmp_path / "c.npz", "--verify-source"),
    ):
        result = run_cli("generate", "--source", source, "--output", out, "--quiet", *verify)
        assert result.returncode == 0, result.stderr
        digests.append(content_sha256(out))
    assert len(set(digests)) == 1
    meta = json.loads((tmp_path / "c.json").read_text())
    assert meta["source_format"] == "cxi" and len(meta["source_content_sha256"]) == 64
    assert run_cli("verify", tmp_path / "c.npz").returncode == 0


def test_info_describes_a_bitshuffle_compressed_cxi_file(
    frames: NDArray[Any], tmp_path: Path
) -> None:
    source = write_counts(tmp_path / "s.cxi", frames, "bitshuffle")
    result = run_cli("info", source)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(source)
    assert "  patterns        100 of 64x64 (100x64x64 <u4, layout NHW)" in result.stdout


READS_A_FILE = """
import sys
from pytest_ptycho_fixture.sources.hdf5read import H5Reader
before = "hdf5plugin" in sys.modules
with H5Reader(sys.argv[1]):
    pass
print(before, "hdf5plugin" in sys.modules)
"""


def test_hdf5plugin_is_imported_when_the_first_file_is_opened_and_not_before(
    tmp_path: Path,
) -> None:
    source = write_cxi(tmp_path / "s.cxi")
    result = subprocess.run(
        [sys.executable, "-c", READS_A_FILE, str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


# --------------------------------------------------------------- without hdf5plugin

WITHOUT_HDF5PLUGIN = """
import sys
sys.modules["hdf5plugin"] = None  # as if it were not installed
if sys.argv[1] == "api":
    from pytest_ptycho_fixture.contract import ContractError
    from pytest_ptycho_fixture.generate import generate_fixture
    try:
        generate_fixture(sys.argv[2], sys.argv[3])
    except ContractError as exc:
        print(exc.key)
        print(exc)
        raise SystemExit(3)
    raise SystemExit(0)
from pytest_ptycho_fixture.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def without_hdf5plugin(*args: object) -> subprocess.CompletedProcess[str]:
    """Run ``args`` where hdf5plugin cannot be imported and HDF5 is given no plugin folder."""
    env = {name: value for name, value in os.environ.items() if name != "HDF5_PLUGIN_PATH"}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_HDF5PLUGIN, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_without_hdf5plugin_a_bitshuffle_source_is_one_line_with_the_install_command(
    frames: NDArray[Any], tmp_path: Path
) -> None:
    source = write_counts(tmp_path / "s.cxi", frames, "bitshuffle")
    out = tmp_path / "f.npz"
    reason = (
        f"'{DATA}' is compressed with bitshuffle (HDF5 filter 32008), which needs"
        f" hdf5plugin: {INSTALL}"
    )
    result = without_hdf5plugin("generate", "--source", source, "--output", out)
    assert one_error_line(result) == f"ptycho-fixture: error: {source}: {reason}"
    assert result.stdout == ""
    api = without_hdf5plugin("api", source, out)
    assert api.returncode == 3, api.stderr
    assert api.stdout.splitlines() == [DATA, f"{source}: {reason}"]
    assert folder_entries(tmp_path) == ["s.cxi"]


def test_without_hdf5plugin_plain_sources_are_read_as_before(tmp_path: Path) -> None:
    source = write_cxi(tmp_path / "s.cxi", kind="gzip")
    result = without_hdf5plugin("generate", "--source", source, "--output", tmp_path / "f.npz")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f.npz").exists()


def test_a_filter_newer_than_the_installed_hdf5plugin_says_to_upgrade_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from h5files import unknown_filter

    monkeypatch.setitem(hdf5read.PLUGIN_FILTERS, 32123, "Future")
    source = unknown_filter(tmp_path)
    with pytest.raises(ContractError) as caught, H5Reader(source) as reader:
        reader.dataset(DATA)
    assert str(caught.value) == (
        f"{source}: '{DATA}' is compressed with Future (HDF5 filter 32123), which the"
        f" installed hdf5plugin {hdf5plugin.version} does not provide to HDF5"
        f" {h5py.version.hdf5_version}: pip install -U hdf5plugin"
    )


# ------------------------------------------------------------------------ size checks

#: A dark run: 100 frames of 256 x 256 zeros, 26 MB that Zstd (alone, or inside bitshuffle
#: or Blosc) and bzip2 store far beyond deflate's 1032:1; bitshuffle/LZ4 and LZ4 stay
#: below 255:1.
DARK: dict[str, Callable[[], Any]] = {
    "bitshuffle": lambda: hdf5plugin.Bitshuffle(nelems=0, cname="lz4"),
    "lz4": lambda: hdf5plugin.LZ4(),
    "zstd": lambda: hdf5plugin.Zstd(),
    "bitshuffle-zstd": lambda: hdf5plugin.Bitshuffle(nelems=1 << 16, cname="zstd"),
    "blosc-zstd": lambda: hdf5plugin.Blosc(cname="zstd"),
    "bzip2": lambda: hdf5plugin.BZip2(),
}


@pytest.mark.parametrize("compression", sorted(DARK))
def test_a_compressed_dark_run_is_not_taken_for_a_hostile_file(
    compression: str, tmp_path: Path
) -> None:
    path = tmp_path / "dark.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "dark",
            data=np.zeros((100, 256, 256), "<u4"),
            chunks=(1, 256, 256),
            **DARK[compression](),
        )
    with H5Reader(path) as reader:
        node = reader.dataset("dark")
        assert int(node[-1].max()) == 0


def test_a_zstd_dataset_that_stores_nothing_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "data",
            shape=(10**6, DETECTOR, DETECTOR),
            dtype="<f4",
            chunks=(1, DETECTOR, DETECTOR),
            **hdf5plugin.Zstd(),
        )
    with pytest.raises(ContractError, match="but stores only 0 bytes"), H5Reader(path) as reader:
        reader.dataset("data")
