"""Shared by the generator tests: small valid sources, hostile NPZ files, the command line."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5files as h5
import numpy as np
import pytest
from h5files import DATA, MAPPED, MAPPED_TEXT, TRANSLATION
from numpy.typing import NDArray

from pytest_ptycho_fixture.npz import writer as npzwrite
from pytest_ptycho_fixture.simulate import X_RANGE, Y_RANGE, simulate_source

SOURCE_POSITIONS = 100


# --------------------------------------------------------------------------- sources


@functools.cache
def _simulated(positions: int, layout: str) -> dict[str, NDArray[Any]]:
    arrays = simulate_source(positions=positions, layout=layout)
    for array in arrays.values():
        array.setflags(write=False)
    return arrays


def source_arrays(positions: int = SOURCE_POSITIONS, layout: str = "HWN") -> dict[str, Any]:
    """A valid source as the simulator writes it: float64 and complex128, read-only arrays."""
    return dict(_simulated(positions, layout))


def write_source(
    path: Path,
    arrays: Mapping[str, Any] | None = None,
    *,
    compress: bool = False,
    **changes: Any,
) -> Path:
    """Write ``arrays`` (default: a 100-position legacy source) with ``changes`` applied.

    A change of ``None`` drops that key.
    """
    merged = dict(source_arrays() if arrays is None else arrays)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    npzwrite.write_npz(path, merged, compress=compress)
    return path


def write_big_source(path: Path, positions: int) -> Path:
    """A valid legacy source of ``positions`` equal patterns, written a detector row at a time.

    Its diffraction is ``positions`` x 32 KiB of float64 yet deflates to almost nothing,
    so the file is small and quick to write but long to read in full (``--verify-source``).
    """
    arrays = source_arrays()
    line = np.linspace(60.0, 160.0, positions)
    small = {
        "objectGuess": arrays["objectGuess"],
        "probeGuess": arrays["probeGuess"],
        "xcoords": line,
        "ycoords": line[::-1].copy(),
    }
    height, width = arrays["diffraction"].shape[:2]
    row = np.full((width, positions), 0.5).tobytes()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for key, value in small.items():
            archive.writestr(f"{key}.npy", npy_bytes(value))
        with archive.open("diffraction.npy", "w", force_zip64=True) as member:
            member.write(npy_header("<f8", (height, width, positions)))
            for _ in range(height):
                member.write(row)
    return path


def with_value(array: NDArray[Any], index: tuple[int, ...], value: Any) -> NDArray[Any]:
    """A writable copy of ``array`` with one element replaced."""
    changed = np.array(array, copy=True)
    changed[index] = value
    return changed


def folder_entries(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden temporary files included."""
    return sorted(os.listdir(folder))


# ------------------------------------------------------------------- hand-made files


def npy_bytes(array: NDArray[Any], *, allow_pickle: bool = False) -> bytes:
    """A ``.npy`` file as ``np.save`` writes it."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple[int, ...], *, version: bytes = b"\x01\x00") -> bytes:
    """A ``.npy`` header written out by hand, declaring whatever it is told to."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (63 - (10 + len(text)) % 64) + "\n"
    return b"\x93NUMPY" + version + len(text).to_bytes(2, "little") + text.encode("latin1")


def write_zip(
    path: Path, members: Mapping[str, bytes], *, compression: int = zipfile.ZIP_STORED
) -> Path:
    """An archive with exactly ``members`` (name -> bytes), built with zipfile."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def source_members(arrays: Mapping[str, Any] | None = None) -> dict[str, bytes]:
    """The ``.npy`` members of a valid source, to mix with a hostile one."""
    merged = source_arrays() if arrays is None else arrays
    return {f"{key}.npy": npy_bytes(np.asarray(value)) for key, value in merged.items()}


class CreatesMarkerWhenUnpickled:
    """Unpickling this object creates the file ``marker``; loading it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def pickled_member(marker: Path) -> bytes:
    """A ``.npy`` of an object array that would create ``marker`` if it were unpickled."""
    hostile = np.empty(SOURCE_POSITIONS, dtype=object)
    hostile[:] = [CreatesMarkerWhenUnpickled(marker)] * SOURCE_POSITIONS
    return npy_bytes(hostile, allow_pickle=True)


def inflate_declared_size(path: Path, member: str, declared: int) -> None:
    """Overwrite the uncompressed size of ``member`` in the central directory."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    name = member.encode()
    # Find this member's central directory record: signature, 42 fixed bytes, then the name.
    start = 0
    while True:
        start = data.index(b"PK\x01\x02", start)
        if data[start + 46 : start + 46 + len(name)] == name:
            break
        start += 4
    assert int.from_bytes(data[start + 24 : start + 28], "little") == info.file_size
    data[start + 24 : start + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------- digests


def recompute_content_sha256(arrays: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The content digest as the digests docstring defines it, written out independently.

    ``sha256(key NUL dtype.str NUL comma-joined shape NUL + C-order little-endian bytes)``
    per array, then ``sha256`` of the lines ``key SP digest LF`` in sorted key order.
    """
    per_array = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        little = array.dtype.newbyteorder("<")
        preamble = b"\0".join(
            [key.encode(), little.str.encode(), ",".join(map(str, array.shape)).encode(), b""]
        )
        data = array.astype(little, order="C").tobytes(order="C")
        per_array[key] = hashlib.sha256(preamble + data).hexdigest()
    lines = "".join(f"{key} {per_array[key]}\n" for key in sorted(per_array))
    return hashlib.sha256(lines.encode()).hexdigest(), per_array


def some_arrays() -> dict[str, NDArray[Any]]:
    """Five small arrays of five dtypes and zero to three dimensions, one of them 0-d."""
    rng = np.random.default_rng(1084)
    return {
        "ycoords": rng.uniform(30, 80, size=37),
        "diffraction": rng.uniform(0, 2, size=(37, 6, 5)).astype(np.float32),
        "objectGuess": (rng.normal(size=(9, 11)) + 1j * rng.normal(size=(9, 11))).astype(
            np.complex64
        ),
        "scan_index": np.arange(37, dtype=np.int32),
        "flag": np.array(True),
    }


# ---------------------------------------------------------------------- hostile table


@dataclass(frozen=True)
class Bad:
    """A bad source: how to build it, what generation is asked, and the error it must give."""

    name: str
    build: Callable[[Path], Path]
    key: str | None
    says: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    argv: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


def _valid_source(folder: Path) -> Path:
    return write_source(folder / "source.npz")


def _amplitudes_with(index: tuple[int, ...], value: float) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        diffraction = with_value(source_arrays()["diffraction"], index, value)
        return write_source(folder / "source.npz", diffraction=diffraction)

    return build


#: Position 2 is not among the stratified 64 of 100 (0, 1, 3, 4, 6, ...).
SKIPPED_NAN = _amplitudes_with((10, 20, 2), np.nan)


def _not_a_zip(folder: Path) -> Path:
    path = folder / "source.npz"
    path.write_bytes(b"diffraction,xcoords,ycoords\n1,2,3\n")
    return path


def _trillion_elements(folder: Path) -> Path:
    members = source_members()
    members["diffraction.npy"] = npy_header("<f8", (10_000, 10_000, 10_000)) + bytes(64)
    return write_zip(folder / "source.npz", members)


def _inflated_size(folder: Path) -> Path:
    # The header's claim (3 GB) is backed by a central directory that lies to match it.
    members = source_members()
    declared = 375_000_000
    members["xcoords.npy"] = npy_header("<f8", (declared,)) + bytes(800)
    path = write_zip(folder / "source.npz", members)
    inflate_declared_size(path, "xcoords.npy", declared * 8 + 128)
    return path


def _pickled(folder: Path) -> Path:
    members = source_members()
    members["xcoords.npy"] = pickled_member(folder / "unpickled-marker")
    return write_zip(folder / "source.npz", members)


def _truncated_file(folder: Path) -> Path:
    whole = write_source(folder / "whole.npz").read_bytes()
    (folder / "whole.npz").unlink()
    path = folder / "source.npz"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _truncated_member(folder: Path) -> Path:
    members = source_members()
    complete = members["diffraction.npy"]
    members["diffraction.npy"] = complete[: len(complete) - 4096]
    return write_zip(folder / "source.npz", members)


def _not_npy_member(folder: Path) -> Path:
    members = source_members()
    members["README.txt"] = b"diffraction patterns of run 1084\n"
    return write_zip(folder / "source.npz", members)


def _directory(folder: Path) -> Path:
    path = folder / "source.npz"
    path.mkdir()
    return path


def _missing(folder: Path) -> Path:
    return folder / "source.npz"


def _ambiguous(folder: Path) -> Path:
    return write_source(folder / "source.npz", source_arrays(positions=64))


BAD_SOURCES: tuple[Bad, ...] = (
    Bad("a file that is not a zip", _not_a_zip, None, ("is not a readable NPZ (zip) archive",)),
    Bad(
        "a header that declares a trillion elements",
        _trillion_elements,
        "diffraction",
        ("declares shape (10000, 10000, 10000)", "holds 64 bytes", "nothing was allocated"),
    ),
    Bad(
        "a central directory that inflates a member's size",
        _inflated_size,
        "xcoords",
        ("declares shape (375000000,)", "3000000000 bytes", "nothing was allocated"),
    ),
    Bad(
        "a pickled object array",
        _pickled,
        "xcoords",
        ("holds Python objects (dtype object)", "pickled arrays are never loaded"),
    ),
    Bad(
        "a NaN amplitude in a pattern the subset skips, with the source verified",
        SKIPPED_NAN,
        "diffraction",
        ("has 1 non-finite values (NaN or inf) but finite amplitudes are required",),
        {"verify_source": True},
        ("--verify-source",),
    ),
    Bad(
        "a NaN amplitude in a selected pattern",
        _amplitudes_with((10, 20, 3), np.nan),
        "diffraction",
        ("has 1 non-finite values (NaN or inf) in the selected patterns but finite",),
    ),
    Bad(
        "an infinite amplitude",
        _amplitudes_with((0, 0, 0), np.inf),
        "diffraction",
        ("has 1 non-finite values (NaN or inf)",),
    ),
    Bad(
        "a negative amplitude",
        _amplitudes_with((5, 5, 7), -0.25),
        "diffraction",
        ("has minimum -0.25", "amplitudes must be >= 0"),
    ),
    Bad(
        "intensities instead of amplitudes",
        lambda folder: write_source(
            folder / "source.npz", diffraction=(source_arrays()["diffraction"] * 100) ** 2
        ),
        "diffraction",
        ("amplitudes must be < 10", "this looks like intensity"),
    ),
    Bad(
        "a 2-D diffraction array",
        lambda folder: write_source(
            folder / "source.npz", diffraction=source_arrays()["diffraction"][:, :, 0]
        ),
        "diffraction",
        ("has shape (64, 64) but a 3-D (H,W,N) or (N,H,W) array is required",),
    ),
    Bad(
        "a 4-D diffraction array",
        lambda folder: write_source(
            folder / "source.npz", diffraction=source_arrays()["diffraction"][None]
        ),
        "diffraction",
        ("has shape (1, 64, 64, 100) but a 3-D (H,W,N) or (N,H,W) array is required",),
    ),
    Bad(
        "complex diffraction",
        lambda folder: write_source(
            folder / "source.npz", diffraction=source_arrays()["diffraction"].astype(np.complex128)
        ),
        "diffraction",
        ("is complex (complex128) but real amplitudes (float32 or float64) are required",),
    ),
    Bad(
        "x coordinates of the wrong length",
        lambda folder: write_source(folder / "source.npz", xcoords=source_arrays()["xcoords"][:99]),
        "xcoords",
        ("has shape (99,) but (100,) is required",),
    ),
    Bad(
        "y coordinates of the wrong length",
        lambda folder: write_source(folder / "source.npz", ycoords=source_arrays()["ycoords"][:99]),
        "ycoords",
        ("has shape (99,) but (100,) is required",),
    ),
    Bad(
        "coordinates that match neither axis of the diffraction",
        lambda folder: write_source(
            folder / "source.npz",
            xcoords=source_arrays()["xcoords"][:90],
            ycoords=source_arrays()["ycoords"][:90],
            xcoords_start=None,
            ycoords_start=None,
        ),
        "diffraction",
        ("has shape (64, 64, 100) but 'xcoords' has 90 positions",),
    ),
    Bad(
        "a non-finite coordinate",
        lambda folder: write_source(
            folder / "source.npz", ycoords=with_value(source_arrays()["ycoords"], (3,), np.nan)
        ),
        "ycoords",
        ("has non-finite values but finite values are required",),
    ),
    Bad(
        "integer coordinates",
        lambda folder: write_source(folder / "source.npz", xcoords=np.arange(100)),
        "xcoords",
        ("has dtype int64 but float64 (or float32) is required",),
    ),
    Bad(
        "an ambiguous layout with no layout given",
        _ambiguous,
        "diffraction",
        ("(64, 64, 64)", "match both axis 0 and axis 2", "--layout HWN or NHW"),
    ),
    Bad(
        "a layout that contradicts the coordinates",
        _valid_source,
        "diffraction",
        ("layout NHW puts the 100 positions of 'xcoords' on axis 0, which has 64",),
        kwargs={"layout": "NHW"},
        argv=("--layout", "NHW"),
    ),
    Bad(
        "an object smaller than 128 pixels",
        lambda folder: write_source(
            folder / "source.npz", objectGuess=source_arrays()["objectGuess"][:127]
        ),
        "objectGuess",
        ("has shape (127, 226) but both sides must be >= 128",),
    ),
    Bad(
        "a real object",
        lambda folder: write_source(
            folder / "source.npz", objectGuess=np.abs(source_arrays()["objectGuess"])
        ),
        "objectGuess",
        ("has dtype float64 but complex64 or complex128 is required",),
    ),
    Bad(
        "a probe whose shape is not the detector's",
        lambda folder: write_source(
            folder / "source.npz", probeGuess=source_arrays()["probeGuess"][:, :32]
        ),
        "probeGuess",
        ("has shape (64, 32) but the detector shape (64, 64) is required",),
    ),
    Bad(
        "a subset larger than the scan",
        _valid_source,
        None,
        ("subset size 101 is out of range: expected 16 <= size <= 100",),
        kwargs={"subset_size": 101},
        argv=("--subset-size", "101"),
    ),
    Bad("a directory", _directory, None, ("is a directory but a source NPZ file is required",)),
    Bad("a missing file", _missing, None, ("does not exist",)),
    Bad("a truncated file", _truncated_file, None, ("is not a readable NPZ (zip) archive",)),
    Bad(
        "a member shorter than its header declares",
        _truncated_member,
        "diffraction",
        ("declares shape (64, 64, 100) float64 (3276800 bytes)", "the file is truncated"),
    ),
    Bad(
        "a member that is not a .npy array",
        _not_npy_member,
        "README.txt",
        ("member 'README.txt' is not a .npy array",),
    ),
    Bad(
        "a missing probe",
        lambda folder: write_source(folder / "source.npz", probeGuess=None),
        "probeGuess",
        ("'probeGuess' is missing; found ['diffraction', 'objectGuess'",),
    ),
    Bad(
        "missing diffraction",
        lambda folder: write_source(folder / "source.npz", diffraction=None),
        "diffraction",
        ("'diffraction' is missing",),
    ),
    # HDF5 sources: CXI unless named otherwise.
    Bad(
        "an HDF5 external link to another, readable file",
        h5.external_link,
        DATA,
        ("is an external link to other.h5:/data", "only data inside the file is read"),
    ),
    Bad(
        "an HDF5 virtual dataset over another file",
        h5.virtual_outside,
        DATA,
        ("is a virtual dataset over other.h5", "only data inside the file is read"),
    ),
    Bad(
        "an HDF5 dataset whose raw data is in an external file",
        h5.external_storage,
        DATA,
        ("keeps its data in external files (raw.bin)",),
    ),
    Bad(
        "an HDF5 dataset compressed with an unknown filter",
        h5.unknown_filter,
        DATA,
        ("is compressed with filter 32123", "which this HDF5 build cannot apply"),
    ),
    Bad(
        "an HDF5 chunk far larger than the file",
        h5.huge_chunks,
        DATA,
        ("declares chunks (64, 2048, 2048) of 1073741824 bytes", "damaged or hostile"),
    ),
    Bad(
        "an HDF5 chunked dataset declaring far more than it stores",
        h5.declared_beyond_stored(chunked=True),
        DATA,
        ("declares shape (1000000, 64, 64) (16384000000 bytes) but stores only 0 bytes",),
    ),
    Bad(
        "an HDF5 contiguous dataset declaring data it never stored",
        h5.declared_beyond_stored(chunked=False),
        DATA,
        ("declares 16384000000 bytes with no stored data",),
    ),
    Bad(
        "HDF5 object references instead of intensities",
        h5.references,
        DATA,
        ("holds object or region references but numbers are required",),
    ),
    Bad(
        "an HDF5 soft link that loops",
        h5.link_cycle,
        DATA,
        ("soft links loop or chain more than 16 times",),
    ),
    Bad(
        "CXI intensities stored as strings",
        h5.with_dataset(DATA, np.full((100, 64, 64), b"1")),
        DATA,
        ("has dtype |S1 but integer or real numbers are required",),
    ),
    Bad(
        "complex CXI intensities",
        h5.with_intensities(lambda intensities: intensities.astype(np.complex128)),
        DATA,
        ("has dtype complex128 but integer or real numbers are required",),
    ),
    Bad(
        "a NaN CXI intensity in a selected pattern",
        h5.with_value_at((3, 20, 10), np.nan),
        DATA,
        ("has 1 non-finite values (NaN or inf) in the selected patterns but finite intensities",),
    ),
    Bad(
        "a NaN CXI intensity in a pattern the subset skips, with the source verified",
        h5.with_value_at((2, 20, 10), np.nan),
        DATA,
        ("has 1 non-finite values (NaN or inf) but finite intensities are required",),
        {"verify_source": True},
        ("--verify-source",),
    ),
    Bad(
        "a negative CXI intensity",
        h5.with_value_at((4, 5, 7), -3.0),
        DATA,
        ("has minimum -3 in the selected patterns but intensities must be >= 0",),
    ),
    Bad(
        "CXI translations of the wrong shape",
        h5.with_dataset(TRANSLATION, np.zeros((100, 2))),
        TRANSLATION,
        ("has shape (100, 2) but (100, 3) is required",),
    ),
    Bad(
        "a CXI file without a probe, whose patterns are all zero",
        lambda folder: h5.write_cxi(folder / "source.cxi", probe=False, scale=0.0),
        "probeGuess",
        (
            "holds no probe, and its selected patterns are all zero, so none can be estimated",
            "give one with --probe FILE",
        ),
    ),
    Bad(
        "a CXI file without the source energy",
        h5.with_dataset("/entry_1/instrument_1/source_1/energy", None),
        "/entry_1/instrument_1/source_1/energy",
        ("is missing; expected a dataset there",),
    ),
    Bad(
        "a CXI detector distance of zero",
        h5.with_dataset("/entry_1/instrument_1/detector_1/distance", 0.0),
        "/entry_1/instrument_1/detector_1/distance",
        ("is 0.0 but a finite number > 0 is required",),
    ),
    Bad("a truncated HDF5 file", h5.truncated, None, ("cannot be opened as HDF5",)),
    Bad(
        "an HDF5 file of no known layout",
        h5.unknown_layout,
        None,
        ("is an HDF5 file but neither CXI", "--keys diffraction=/path"),
    ),
    Bad(
        "an HDF5 layout mapped by --keys without its object",
        h5.mapped_without("objectGuess"),
        MAPPED["objectGuess"],
        ("is missing; expected a dataset there",),
        {"keys": MAPPED_TEXT},
        ("--keys", MAPPED_TEXT),
    ),
)


# --------------------------------------------------------------------- command line


def cli_command() -> list[str]:
    return [sys.executable, "-m", "pytest_ptycho_fixture"]


def console_script() -> str:
    """The installed ``ptycho-fixture`` script of the interpreter running the tests."""
    beside = Path(sys.executable).with_name("ptycho-fixture")
    found = str(beside) if beside.exists() else shutil.which("ptycho-fixture")
    assert found, "the ptycho-fixture console script is not installed"
    return found


def run_cli(
    *args: object,
    cwd: Path | None = None,
    unprivileged: bool = False,
    command: Sequence[str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command line in a new process; ``unprivileged`` makes file permissions bind.

    ``preexec_fn`` runs in the child before the command (to set a resource limit, say).
    """
    if unprivileged and os.geteuid() == 0:
        assert preexec_fn is None, "unprivileged takes the child's preexec_fn"
        preexec_fn = _drop_permission_override
    return subprocess.run(
        [*(command or cli_command()), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
        preexec_fn=preexec_fn,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command, checked for exit status 2."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stderr.endswith("\n"), result.stderr
    assert lines[0].startswith("ptycho-fixture: error: "), lines[0]
    return lines[0]


# ----------------------------------------------------------- permissions under root

_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _PR_CAPBSET_DROP = 1, 2, 24


def _drop_permission_override() -> None:
    # Runs in the child before exec: without these two capabilities from the bounding
    # set, the root user is held to file permissions like anyone else.
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@functools.lru_cache(maxsize=1)
def permissions_can_bind() -> bool:
    """Whether a child process can be made to obey file permissions."""
    if os.geteuid() != 0:
        return True
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import os; open('/proc/self/status').read()"],
            preexec_fn=_drop_permission_override,
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


#: Marks a test that needs file permissions to bind (a child that cannot override them).
needs_permissions = pytest.mark.skipif(
    not permissions_can_bind(),
    reason="running as root, and this system does not let a child process give up the"
    " capability to override file permissions",
)


@contextlib.contextmanager
def permissions(path: Path, mode: int) -> Iterator[None]:
    """``path`` with permission bits ``mode`` inside the block, its own restored after."""
    before = path.stat().st_mode & 0o7777
    path.chmod(mode)
    try:
        yield
    finally:
        path.chmod(before)


GENERATE_SCRIPT = """
import json, sys
from pytest_ptycho_fixture import ContractError, generate_fixture
try:
    generate_fixture(*sys.argv[1:3])
except (ContractError, OSError) as exc:
    print(json.dumps({"type": type(exc).__name__, "str": str(exc),
                      "key": getattr(exc, "key", None), "filename": getattr(exc, "filename", None)}))
else:
    print(json.dumps({"type": None}))
"""


def generate_unprivileged(source: Path, output: Path) -> dict[str, Any]:
    """Call ``generate_fixture(source, output)`` in a process bound by file permissions."""
    result = subprocess.run(
        [sys.executable, "-c", GENERATE_SCRIPT, str(source), str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_drop_permission_override if os.geteuid() == 0 else None,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


def run1084_shaped_scan(seed: int = 1084) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """1087 positions in raster order over Run1084's ranges, each moved by up to a third of
    a step: a scan of the shape of Run1084, other than the built-in one."""
    rng = np.random.default_rng(seed)
    side = 33
    gx, gy = np.meshgrid(np.linspace(*X_RANGE, side), np.linspace(*Y_RANGE, side))
    step = (X_RANGE[1] - X_RANGE[0]) / (side - 1)
    x = gx.ravel()[:1087] + rng.uniform(-step / 3, step / 3, 1087)
    y = gy.ravel()[:1087] + rng.uniform(-step / 3, step / 3, 1087)
    return x, y


def write_run1084_shaped_source(path: Path) -> Path:
    """The simulated 1087-position source with the positions of :func:`run1084_shaped_scan`."""
    x, y = run1084_shaped_scan()
    npzwrite.write_npz(path, {**simulate_source(positions=1087), "xcoords": x, "ycoords": y})
    return path
