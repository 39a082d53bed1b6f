"""Derive the canonical fixture from a source scan: subset, transpose, cast, write, describe."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from . import contract as c
from ._version import __version__
from .atomic import atomic_writer, missing_parents, parents_made
from .contract import ContractError
from .digests import ContentHasher, content_digests
from .npzread import NpzReader
from .npzwrite import write_npz_to
from .sidecar import SIDECAR_VERSION, array_table, default_sidecar_path, dumps
from .spec import (
    BUILTIN_SOURCE,
    DEFAULT_STRATEGY,
    DEFAULT_SUBSET,
    MIN_SUBSET,
    grouping,
    parse_fraction,
    parse_keys,
    parse_strategy,
    parse_subset_size,
)
from .subsets import CELLS, coverage, groups, occupied_cells, rule, stripes_note, subset_indices

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .progress import Progress

DEFAULT_MIN_COVERAGE = 0.5
#: Content digest of the full built-in source (``simulate_source()``); a test recomputes it.
SYNTHETIC_SOURCE_CONTENT_SHA256 = "baa884e4ddd3cfafb94e1f1c0180ef2db71cb9b6c2ef4a94868da2a2c3827a32"
#: Fingerprint of the NPZ that ``ptycho-fixture simulate`` writes; a test recomputes it.
SYNTHETIC_SOURCE_FINGERPRINT = "a3c477d589eab5b1920b573796a1c1088a274f5936bfabb095c4379a06f8ef7a"


class GeneratedFixture(NamedTuple):
    """What :func:`generate_fixture` wrote."""

    output_path: Path
    metadata_path: Path
    sha256: str


class Source(Protocol):
    """A scan the fixture is derived from: small arrays in memory, patterns on demand."""

    label: str
    small: dict[str, NDArray[Any]]
    dropped_keys: list[str]
    notes: list[str]
    #: What the source did to its data on the way in (complete once patterns are taken).
    transformations: list[str]
    #: For a source of named datasets (HDF5): fixture key -> the dataset read, with units.
    datasets: dict[str, str]
    #: What the sidecar records of the source beyond its path (its format, say).
    provenance: dict[str, Any]

    @property
    def n_positions(self) -> int:
        """Positions in the scan."""

    @property
    def layout(self) -> str:
        """``HWN`` or ``NHW``: how the source stores its patterns."""

    def take_patterns(self, indices: Sequence[int]) -> NDArray[Any]:
        """``(n, H, W)`` patterns at ``indices``, in the source dtype."""

    def content_sha256(self) -> str | None:
        """Content digest of the source arrays the fixture is derived from, if computed."""

    def fingerprint(self) -> str:
        """:func:`.digests.fingerprint` of the source NPZ: free, whatever its size."""


@dataclass
class NpzSource:
    """A source NPZ, read through the streaming reader.

    By default only what the fixture needs is read: the small arrays and the subset's
    patterns (seeking straight to them in a stored member). With ``verify=True`` every
    byte is read: each pattern is checked and the source's content digest computed.
    """

    path: Path
    layout_hint: str | None = None
    label: str = ""
    verify: bool = False
    n_positions: int = 0
    layout: str = ""
    small: dict[str, Any] = field(default_factory=dict)
    dropped_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    transformations: list[str] = field(default_factory=list)
    datasets: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    _hasher: ContentHasher = field(default_factory=ContentHasher)
    _key: str = c.DIFFRACTION
    _fingerprint: str = ""
    #: ``progress(bytes_read, total_bytes)`` after each chunk of the diffraction streamed.
    progress: Progress | None = None

    def __post_init__(self) -> None:
        self.label = self.label or str(self.path)
        path = self.path
        if path.is_dir():
            raise ContractError(path, None, "is a directory but a source NPZ file is required")
        with NpzReader(path) as reader:
            self._fingerprint = reader.fingerprint()
            present = set(reader.members)
            if c.DIFFRACTION not in present and c.DIFF3D in present:
                self._key = c.DIFF3D
                self.notes.append(f"diffraction read from the legacy key {c.DIFF3D!r}")
            elif c.DIFF3D in present:
                self.notes.append(f"source {c.DIFF3D!r} ignored: the alias is rebuilt")
            optional = [key for key in c.OPTIONAL_PER_POSITION if key in present]
            for key in (c.XCOORDS, c.YCOORDS, c.OBJECT, c.PROBE, *optional):
                self.small[key] = reader.read(key, self._hasher if self.verify else None)
            self.dropped_keys = sorted(present - c.SOURCE_KEYS)
            xcoords = self.small[c.XCOORDS]
            if xcoords.ndim != 1:
                raise ContractError(
                    path,
                    c.XCOORDS,
                    f"{c.XCOORDS!r} has shape {xcoords.shape} but a 1-D (N,) array is required",
                )
            member = reader.member(self._key)
            n = int(xcoords.shape[0])
            ycount = self.small[c.YCOORDS].shape[:1]
            axes = (member.shape[0], member.shape[-1]) if member.shape else ()
            if n not in axes and ycount and ycount[0] in axes:
                # The diffraction array sides with 'ycoords': blame 'xcoords'.
                n = int(ycount[0])
            self.n_positions = n
            for key in (c.XCOORDS, c.YCOORDS, *c.OPTIONAL_PER_POSITION):
                if key in self.small:
                    c.check_per_position(path, key, self.small[key], n)
            c.check_diffraction_dtype(path, self._key, member.dtype)
            self.layout = c.decide_layout(path, member.shape, n, self.layout_hint)
            shape = member.shape
            detector = (shape[0], shape[1]) if self.layout == "HWN" else (shape[1], shape[2])
            c.check_object(path, self.small[c.OBJECT], exact=False)
            c.check_probe(path, self.small[c.PROBE], detector, exact=False)

    def take_patterns(self, indices: Sequence[int]) -> NDArray[Any]:
        import numpy as np

        axis = 2 if self.layout == "HWN" else 0
        stats = c.AmplitudeStats()
        with NpzReader(self.path) as reader:
            if self.verify:
                # Every pattern is checked and digested while streaming.
                patterns = reader.take(
                    self._key, axis, indices, self._hasher, visit=stats.add, progress=self.progress
                )
            else:
                patterns = reader.take(self._key, axis, indices, progress=self.progress)
                stats.add(patterns)
        stats.check(self.path, self._key, "" if self.verify else " in the selected patterns")
        if self.layout == "HWN":
            patterns = np.ascontiguousarray(patterns.transpose(2, 0, 1))
        return patterns

    def content_sha256(self) -> str | None:
        return self._hasher.content_sha256 if self.verify else None

    def fingerprint(self) -> str:
        return self._fingerprint


@dataclass
class SyntheticSource:
    """The built-in scan from :mod:`.simulate`; only the requested patterns are simulated."""

    label: str = BUILTIN_SOURCE
    layout: str = "HWN"
    dropped_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    transformations: list[str] = field(default_factory=list)
    datasets: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    small: dict[str, Any] = field(default_factory=dict)
    n_positions: int = 0

    def __post_init__(self) -> None:
        from . import simulate

        scan = simulate.synthetic_scan()
        self.small = {
            c.OBJECT: scan.object,
            c.PROBE: scan.probe,
            c.XCOORDS: scan.xcoords,
            c.YCOORDS: scan.ycoords,
            "xcoords_start": scan.xcoords,
            "ycoords_start": scan.ycoords,
        }
        self.n_positions = int(scan.xcoords.shape[0])
        self.notes.append("source simulated: only the subset's positions were computed")

    def take_patterns(self, indices: Sequence[int]) -> NDArray[Any]:
        import numpy as np

        from . import simulate

        index = np.asarray(indices, dtype=np.intp)
        return simulate.forward(
            self.small[c.PROBE],
            self.small[c.OBJECT],
            self.small[c.XCOORDS][index],
            self.small[c.YCOORDS][index],
        )

    def content_sha256(self) -> str | None:
        return SYNTHETIC_SOURCE_CONTENT_SHA256

    def fingerprint(self) -> str:
        return SYNTHETIC_SOURCE_FINGERPRINT


def open_source(
    source: str | os.PathLike[str] | None,
    layout: str | None = None,
    *,
    diffraction: str | os.PathLike[str] | None = None,
    keys: Mapping[str, str] | None = None,
    label: str | None = None,
    diffraction_label: str | None = None,
    verify: bool = False,
    progress: Progress | None = None,
) -> Source:
    """The built-in synthetic source for ``None``, else the scan at ``source``.

    What ``source`` is, is read from its first bytes: an HDF5 file (CXI, a ptychodus
    product with its patterns in ``diffraction``, or any layout that ``keys`` maps; see
    :mod:`.hdf5source`), else an NPZ. ``verify`` reads all of the source (see
    :class:`NpzSource`). ``progress`` reports the reading of an NPZ's patterns (the
    built-in source simulates only the subset, which is quick, and is always verified:
    its digest is a constant). ``label`` and ``diffraction_label`` name the source and
    the diffraction file in the sidecar (default: the paths as given).
    """
    if source is None:
        if diffraction is not None or keys is not None:
            raise ContractError(
                BUILTIN_SOURCE, None, "takes no --diffraction or --keys; give a --source file"
            )
        return SyntheticSource()
    path = Path(source)
    shown = label or os.fspath(source)
    from .hdf5read import is_hdf5

    if path.is_file() and is_hdf5(path):
        from .hdf5source import open_hdf5

        return open_hdf5(
            path,
            shown,
            layout,
            diffraction=None if diffraction is None else Path(diffraction),
            diffraction_label=diffraction_label,
            keys=keys,
            verify=verify,
            progress=progress,
        )
    if diffraction is not None or keys is not None:
        option = "--diffraction" if diffraction is not None else "--keys"
        raise ContractError(
            shown, None, f"is not an HDF5 file, and {option} applies only to HDF5 sources"
        )
    return NpzSource(path, layout, label=shown, verify=verify, progress=progress)


@dataclass(frozen=True)
class Fixture:
    """A fixture built in memory, ready to write."""

    arrays: dict[str, NDArray[Any]]
    metadata: dict[str, Any]


def build_fixture(
    source: Source,
    subset_size: int = DEFAULT_SUBSET,
    *,
    strategy: str = DEFAULT_STRATEGY,
    gridsize: int | None = None,
    diff3d_alias: bool = True,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> Fixture:
    """Subset, transpose and cast ``source`` into validated fixture arrays and metadata.

    Raises :class:`.spec.OptionError` for an option that no source accepts, and
    :class:`.contract.ContractError` naming the source for one that this source does not
    (more positions than it has, say).
    """
    import numpy as np

    strategy = parse_strategy(strategy, "strategy")
    subset_size = parse_subset_size(subset_size, "subset_size")
    gridsize = grouping(strategy, subset_size, gridsize, "gridsize")
    min_coverage = parse_fraction(min_coverage, "min_coverage")
    label, n = source.label, source.n_positions
    if subset_size > n:
        raise ContractError(
            label,
            None,
            f"subset size {subset_size} is out of range: expected {MIN_SUBSET} <= size <= {n}"
            f" (the source has {n} positions)",
        )
    xcoords, ycoords = source.small[c.XCOORDS], source.small[c.YCOORDS]
    found = None if gridsize is None else groups(xcoords, ycoords, subset_size, gridsize)
    if found is None:
        indices = subset_indices(strategy, xcoords, ycoords, subset_size)
    else:
        indices = sorted(i for group in found for i in group)
    cover: dict[str, Any] = {
        axis: round(coverage(values, indices), 6)
        for axis, values in (("x", xcoords), ("y", ycoords))
    }
    cells = occupied_cells(xcoords, ycoords, indices)
    cover[CELLS] = cells
    if min(cover["x"], cover["y"]) < min_coverage:
        # spread covers the scan in two dimensions; stratified can land on one raster column.
        fix = (
            "lower --min-coverage"
            if strategy == "spread"
            else "use --subset-strategy spread (one position per cell of a grid over the"
            " scan) or lower --min-coverage"
        )
        raise ContractError(
            label,
            c.XCOORDS if cover["x"] < min_coverage else c.YCOORDS,
            f"the {strategy} subset covers {cover['x']:.1%} of the x range and"
            f" {cover['y']:.1%} of the y range but at least {min_coverage:.0%} of each is"
            f" required; {fix}",
        )
    patterns = source.take_patterns(indices)
    subset_rule = rule(strategy, n, subset_size, gridsize)
    transformations = [f"subset: {strategy}, positions {subset_rule}", *source.transformations]
    if source.layout == "HWN":
        transformations.append("diffraction: transposed from legacy (H,W,N) to (N,H,W)")
    if patterns.dtype != np.float32:
        transformations.append(
            f"diffraction: {patterns.dtype} -> float32 (IEEE round-to-nearest cast, no rescaling)"
        )
    index = np.asarray(indices, dtype=np.intp)
    arrays: dict[str, NDArray[Any]] = {c.DIFFRACTION: patterns.astype(np.float32)}
    if diff3d_alias:
        arrays[c.DIFF3D] = arrays[c.DIFFRACTION].copy()
        transformations.append(f"{c.DIFF3D}: copy of diffraction (legacy alias)")
    for key in (c.OBJECT, c.PROBE):
        value = source.small[key]
        if value.dtype != np.complex64:
            transformations.append(f"{key}: {value.dtype} -> complex64 (IEEE cast)")
        arrays[key] = np.ascontiguousarray(value, dtype=np.complex64)
    for key in (c.XCOORDS, c.YCOORDS, *c.OPTIONAL_PER_POSITION):
        if key not in source.small:
            continue
        value = source.small[key][index]
        if key != "scan_index":
            if value.dtype != np.float64:
                transformations.append(f"{key}: {value.dtype} -> float64 (exact)")
            value = value.astype(np.float64)
        arrays[key] = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
    fixture_groups: list[list[int]] | None = None
    if found is not None:
        # The groups as fixture indices: where each member landed in the sorted subset.
        where = {source_index: k for k, source_index in enumerate(indices)}
        fixture_groups = [[where[i] for i in group] for group in found]
        arrays[c.GROUPS] = np.asarray(fixture_groups, dtype="<i8")
        transformations.append(
            f"{c.GROUPS}: ({len(found)}, {len(found[0])}) int64 fixture indices, seed first"
        )
    notes = [
        f"layout {source.layout} decided from {n} coordinate positions",
        *source.notes,
        *c.validate_fixture(label, arrays),
    ]
    if stripes := stripes_note(strategy, cells):
        notes.append(stripes)
    metadata: dict[str, Any] = {
        "version": SIDECAR_VERSION,
        "source_dataset": label,
        "source_layout": source.layout,
        "source_positions": n,
        "subset_strategy": strategy,
        "subset_size": subset_size,
        "subset_rule": subset_rule,
        "subset_indices": indices,
        "coverage": cover,
        **({} if fixture_groups is None else {"gridsize": gridsize, "groups": fixture_groups}),
        "min_coverage": min_coverage,
        **source.provenance,
        **({"source_datasets": dict(source.datasets)} if source.datasets else {}),
        "transformations": transformations,
        "dropped_keys": list(source.dropped_keys),
        "validation_notes": notes,
    }
    source_digest = source.content_sha256()
    metadata["source_content_sha256"] = source_digest
    metadata["source_fingerprint"] = source.fingerprint()
    if source_digest is None:
        notes.append(
            f"source read in part: only the {subset_size} selected patterns were read and"
            " checked, so source_content_sha256 is null; --verify-source reads and checks"
            " all of it"
        )
    return Fixture(arrays, metadata)


def write_fixture(
    fixture: Fixture,
    output_path: Path,
    metadata_path: Path | None = None,
    *,
    compress: bool = True,
    write_metadata: bool = True,
) -> dict[str, Any]:
    """Atomically write the NPZ (and its sidecar); return the complete metadata.

    With ``write_metadata=False`` only the NPZ is written: used to heal a cached copy
    without touching a committed sidecar.
    """
    output_path = Path(output_path)
    sidecar = Path(metadata_path) if metadata_path else default_sidecar_path(output_path)
    # Checked first: the sidecar is published before the NPZ is moved into place.
    for target in (output_path, sidecar) if write_metadata else (output_path,):
        if target.is_dir():
            raise ContractError(target, None, "is a directory but a file path is required")
    if write_metadata and output_path.resolve() == sidecar.resolve():
        raise ContractError(
            sidecar, None, "is the fixture's own path; the sidecar needs a path of its own"
        )
    content, per_array = content_digests(fixture.arrays)
    metadata = dict(fixture.metadata)
    metadata.update(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        generator={"name": "pytest-ptycho-fixture", "version": __version__},
        content_sha256=content,
        arrays=array_table(fixture.arrays, per_array),
        compressed=compress,
    )
    # git runs while the NPZ is compressed and written.
    with _GitCommit() as commit, atomic_writer(output_path) as handle:
        metadata["sha256_checksum"] = write_npz_to(
            handle, fixture.arrays, compress=compress, path=output_path
        )
        metadata["generator_commit"] = commit.result()
        if write_metadata:
            with atomic_writer(sidecar) as meta_handle:
                meta_handle.write(dumps(metadata))
    return metadata


def generate_fixture(
    source_path: str | os.PathLike[str] | None,
    output_path: str | os.PathLike[str],
    subset_size: int = DEFAULT_SUBSET,
    metadata_path: str | os.PathLike[str] | None = None,
    *,
    strategy: str = DEFAULT_STRATEGY,
    gridsize: int | None = None,
    layout: str | None = None,
    diff3d_alias: bool = True,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    compress: bool = True,
    verify_source: bool = False,
    progress: Progress | None = None,
    diffraction: str | os.PathLike[str] | None = None,
    keys: Mapping[str, str] | str | None = None,
) -> GeneratedFixture:
    """Generate the fixture NPZ and its sidecar from ``source_path`` (``None``: built-in).

    Returns ``(output_path, metadata_path, sha256)`` where ``sha256`` is the SHA-256 of
    the NPZ file. Missing folders above the two paths are made, as ``mkdir -p`` does.
    Nothing is written, and no folder is left made, unless everything succeeds.
    ``verify_source`` reads all of a source NPZ, checking every pattern and recording its
    content digest; otherwise only what the fixture needs is read. ``progress(done,
    total)`` reports the bytes of a source NPZ's diffraction read so far. ``diffraction``
    is the patterns' file of a ptychodus product source; ``keys`` maps fixture keys to the
    datasets of an HDF5 source in a layout of its own (a mapping, or ``--keys`` text).

    Raises :class:`.spec.OptionError` for a bad option value, before anything is read, and
    :class:`.contract.ContractError` naming the file for a source or output that is refused.
    """
    # Options first: they are refused whatever the source, before it is opened.
    strategy = parse_strategy(strategy, "strategy")
    subset_size = parse_subset_size(subset_size, "subset_size")
    gridsize = grouping(strategy, subset_size, gridsize, "gridsize")
    min_coverage = parse_fraction(min_coverage, "min_coverage")
    if keys is not None:
        # A mapping is checked as its --keys text would be.
        text = keys if isinstance(keys, str) else ",".join(f"{k}={v}" for k, v in keys.items())
        parsed = parse_keys(text, "keys")
        keys = None if parsed is None else dict(parsed)
    output = Path(output_path)
    sidecar = Path(metadata_path) if metadata_path else default_sidecar_path(output)
    # A file in the way of a folder is refused before the source is read.
    for target in (output, sidecar):
        missing_parents(target)
    fixture = build_fixture(
        open_source(
            source_path,
            layout,
            diffraction=diffraction,
            keys=keys,
            verify=verify_source,
            progress=progress,
        ),
        subset_size,
        strategy=strategy,
        gridsize=gridsize,
        diff3d_alias=diff3d_alias,
        min_coverage=min_coverage,
    )
    # Made only now, so that a refused source leaves no folder behind.
    with parents_made(output, sidecar):
        metadata = write_fixture(fixture, output, sidecar, compress=compress)
    return GeneratedFixture(output, sidecar, metadata["sha256_checksum"])


class _GitCommit:
    """``git rev-parse HEAD`` of the working directory, started now, read later."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None
        try:
            self._process = subprocess.Popen(
                ["git", "rev-parse", "HEAD"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError:
            self._process = None

    def __enter__(self) -> _GitCommit:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        """Reap git, killing it if its answer was never asked for."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            self._process.communicate()

    def result(self) -> str:
        """The 40-digit commit, or "unknown" outside a git repository or without git."""
        if self._process is None:
            return "unknown"
        try:
            out, _ = self._process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            return "unknown"
        commit = out.strip()
        return commit if self._process.returncode == 0 and len(commit) == 40 else "unknown"
