"""Derive the canonical fixture from a source scan: subset, transpose, cast, write, describe."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from . import contract as c
from ._version import __version__
from .atomic import atomic_writer, missing_parents, parents_made
from .contract import ContractError
from .npz.digests import content_digests
from .npz.sidecar import SIDECAR_VERSION, array_table, default_sidecar_path, dumps
from .npz.writer import write_npz_to
from .sources.registry import open_source
from .spec import (
    DEFAULT_STRATEGY,
    DEFAULT_SUBSET,
    MIN_SUBSET,
    grouping,
    parse_fraction,
    parse_geometry,
    parse_keys,
    parse_strategy,
    parse_subset_size,
)
from .subsets import CELLS, coverage, groups, occupied_cells, rule, stripes_note, subset_indices

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .cli.progress import Progress
    from .geometry import Geometry
    from .sources.base import Source

DEFAULT_MIN_COVERAGE = 0.5

class GeneratedFixture(NamedTuple):
    """What :func:`generate_fixture` wrote."""

    output_path: Path
    metadata_path: Path
    sha256: str


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
        **({"geometry": dict(source.geometry)} if source.geometry else {}),
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
    geometry: Geometry | str | None = None,
    probe: str | os.PathLike[str] | None = None,
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
    ``geometry`` is that of a source that holds none (a :class:`.geometry.Geometry`, or
    ``--geometry`` text), recorded in the sidecar; ``probe`` the probe file of a CXI
    source that holds no probe.

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
    if isinstance(geometry, str):
        geometry = parse_geometry(geometry, "geometry")
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
            geometry=geometry,
            probe=probe,
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
