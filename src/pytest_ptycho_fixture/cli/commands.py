"""What each ``ptycho-fixture`` command does, given its parsed arguments; each returns
the exit status."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..spec import OptionError, grouping, parse_store, store_label

if TYPE_CHECKING:
    from ..generate import Fixture

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """Input that the command refuses; its text is the one line shown."""


def sidecar_out(args: argparse.Namespace) -> Path:
    """The sidecar that ``generate`` writes."""
    from ..npz.sidecar import default_sidecar_path

    path: Path = args.metadata_out or default_sidecar_path(args.output)
    return path


def check_output(path: Path, option: str = "--output") -> None:
    """Refuse, before any work, an output that is a folder or has a file in its way.

    Its missing folders are made later, just before it is written.
    """
    from ..atomic import missing_parents

    if path.is_dir():
        raise BadInput(f"{path}: is a directory but a file path is required for {option}")
    missing_parents(path)


def generate(args: argparse.Namespace) -> int:
    from .. import locking
    from ..atomic import parents_made
    from ..generate import build_fixture
    from ..sources.registry import open_source
    from ..subsets import CELLS, COVERAGE_GRID, stripes_note

    metadata_path = sidecar_out(args)
    check_output(args.output)
    check_output(metadata_path, "--metadata-out")
    started = time.perf_counter()
    try:
        gridsize = grouping(args.subset_strategy, args.subset_size, args.gridsize)
    except OptionError as exc:
        raise BadInput(str(exc)) from None
    source = open_source(
        args.source,
        args.layout,
        diffraction=args.diffraction,
        keys=None if args.keys is None else dict(args.keys),
        verify=args.verify_source,
        progress=args.progress,
        geometry=args.geometry,
        probe=args.probe,
    )
    fixture = build_fixture(
        source,
        args.subset_size,
        strategy=args.subset_strategy,
        gridsize=gridsize,
        diff3d_alias=args.diff3d_alias,
        min_coverage=args.min_coverage,
    )

    lock_file = locking.lock_path(args.output)
    # Folders and lock are made only now, so that a refused source leaves nothing behind.
    with parents_made(args.output, metadata_path) as made:
        try:
            meta = _write_locked(args, fixture, metadata_path)
        except BaseException:
            if args.output.parent in made:
                # Nothing was written and the new folder goes, so its lock file goes too
                # (see locking for why one is otherwise kept): only a writer that found
                # the folder in the moments since it was made could be waiting on it,
                # and that one then finds the folder gone and fails as cleanly.
                lock_file.unlink(missing_ok=True)
            raise
    elapsed = time.perf_counter() - started
    cover = meta["coverage"]
    print(f"wrote {args.output}")
    print(f"wrote {metadata_path}")
    print(f"source          {meta['source_dataset']}")
    cells = cover[CELLS]
    print(
        f"subset          {meta['subset_size']} of {meta['source_positions']} positions"
        f" ({meta['subset_strategy']}), coverage x {cover['x']:.1%}, y {cover['y']:.1%},"
        f" {cells} of {COVERAGE_GRID * COVERAGE_GRID} cells"
    )
    if "groups" in meta:
        size = meta["gridsize"]
        print(f"groups          {len(meta['groups'])} of {size}x{size}, seed first")
    if note := stripes_note(meta["subset_strategy"], cells):
        print(f"note            {note}")
    print(f"content_sha256  {meta['content_sha256']}")
    print(f"sha256_checksum {meta['sha256_checksum']}")
    print(f"time            {elapsed:.2f} s")
    return EXIT_OK


def _write_locked(
    args: argparse.Namespace, fixture: Fixture, metadata_path: Path
) -> dict[str, Any]:
    """Write the fixture under the pytest plugin's lock, never while a run verifies it."""
    from .. import locking
    from ..generate import write_fixture

    def waiting(lock: Path) -> None:
        print(f"ptycho-fixture: waiting for {lock}, held by another process", file=sys.stderr)

    sweep = (args.output, metadata_path)
    try:
        with locking.holding(args.output, locking.DEFAULT_TIMEOUT, sweep, on_wait=waiting):
            return write_fixture(fixture, args.output, metadata_path, compress=args.compress)
    except locking.LockUnavailable as exc:
        if exc.folder_not_writable:
            assert exc.errno is not None
            raise BadInput(
                f"{args.output}: cannot create a file in {args.output.parent}:"
                f" {os.strerror(exc.errno)} (its lock file {exc.path})"
            ) from None
        waited = f" after waiting {exc.waited:g} s" if exc.waited is not None else ""
        raise BadInput(f"{args.output}: cannot take its lock{waited}: {exc}") from None


def _against_sidecar(path: Path, metadata: Path | None) -> tuple[str, Path, str | None]:
    """Check a fixture against its sidecar (``verify`` and ``push``): its content digest,
    the sidecar's path, and the mismatch in words (``None``: it matches, and it keeps the
    data contract)."""
    from ..npz.sidecar import check_against_sidecar

    checked = check_against_sidecar(path, metadata)
    return checked.fixture.content_sha256, checked.sidecar, checked.mismatch


def verify(args: argparse.Namespace) -> int:
    digest, sidecar_path, mismatch = _against_sidecar(args.path, args.metadata)
    if mismatch is None:
        print(f"OK {args.path}: content_sha256 {digest} matches {sidecar_path}")
        return EXIT_OK
    print(f"MISMATCH {args.path}: {mismatch}; sidecar {sidecar_path}", file=sys.stderr)
    return EXIT_MISMATCH


def push(args: argparse.Namespace) -> int:
    from ..store import StoreFault, entry_name, open_store

    try:
        url = parse_store(args.store, "--store", Path.cwd())
        if url is None:
            raise OptionError("--store", args.store, "store URL", "a folder or a URL")
    except OptionError as exc:
        raise BadInput(str(exc)) from None
    digest, sidecar_path, mismatch = _against_sidecar(args.path, args.metadata)
    if mismatch is not None:
        print(
            f"MISMATCH {args.path}: {mismatch}; sidecar {sidecar_path}; nothing was pushed",
            file=sys.stderr,
        )
        return EXIT_MISMATCH
    try:
        store = open_store(url, args.timeout, store_label(Path.cwd(), url))
        uploaded = store.push(args.path, digest)
    except StoreFault as exc:
        raise BadInput(str(exc)) from None
    if uploaded:
        print(f"pushed {args.path} to {store.label} as {entry_name(digest)}")
    else:
        print(f"{store.label} holds {entry_name(digest)} already, the same bytes; nothing uploaded")
    print(f"content_sha256  {digest}")
    return EXIT_OK


def _describe(array: Any) -> str:
    import numpy as np

    if array.size == 0 or array.dtype.kind not in "biufc":
        return ""
    values = np.abs(array) if array.dtype.kind == "c" else array
    prefix = "|.| " if array.dtype.kind == "c" else ""
    return f"{prefix}[{values.min():.6g}, {values.max():.6g}]"


def info(args: argparse.Namespace) -> int:
    from ..npz.digests import file_sha256
    from ..npz.reader import load_npz
    from ..sources.hdf5read import is_hdf5

    # With --diffraction or --keys, open_source refuses a file that is not HDF5.
    hdf5_options = args.diffraction is not None or args.keys is not None
    if hdf5_options or (args.path.is_file() and is_hdf5(args.path)):
        return _info_hdf5(args)
    loaded = load_npz(args.path)
    print(f"{args.path}")
    width = max((len(key) for key in loaded.arrays), default=0)
    for key, array in loaded.arrays.items():
        shape = "x".join(str(n) for n in array.shape) or "scalar"
        print(
            f"  {key:<{width}}  {shape:<12} {array.dtype!s:<10} {_describe(array):<28}"
            f" sha256 {loaded.array_sha256[key][:16]}"
        )
    print(f"content_sha256  {loaded.content_sha256}")
    print(f"sha256_checksum {file_sha256(args.path)}")
    return EXIT_OK


def _info_hdf5(args: argparse.Namespace) -> int:
    """The datasets a fixture is made from, their shapes, dtypes and units."""
    from ..npz.digests import file_sha256
    from ..sources.registry import open_source

    source = open_source(
        args.path,
        diffraction=args.diffraction,
        keys=None if args.keys is None else dict(args.keys),
        probe=args.probe,
    )
    frames = getattr(source, "frames", None)
    print(f"{args.path}")
    if frames is not None:
        shape = "x".join(str(n) for n in frames.shape)
        print(
            f"  patterns        {frames.count} of {frames.detector[0]}x{frames.detector[1]}"
            f" ({shape} {frames.dtype}, layout {frames.layout})"
        )
    width = max((len(key) for key in source.datasets), default=0)
    for key, where in source.datasets.items():
        print(f"  {key:<{width}}  {where}")
    for line in source.transformations:
        print(f"  {line}")
    print(f"sha256_checksum {file_sha256(args.path)}")
    return EXIT_OK


def export(args: argparse.Namespace) -> int:
    from ..export import Mismatch, export_fixture

    try:
        written = export_fixture(
            args.path, args.format, args.output, sidecar=args.metadata, geometry=args.geometry
        )
    except Mismatch as exc:
        print(f"MISMATCH {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    for path in written:
        print(f"wrote {path}")
    print(f"format          {args.format}")
    return EXIT_OK


def export_outputs(args: argparse.Namespace) -> list[Path]:
    """The files ``export`` writes."""
    from ..export import ptychodus

    if args.format == "ptychodus":
        return [args.output / ptychodus.PRODUCT, args.output / ptychodus.DIFFRACTION]
    return [args.output]


def simulate(args: argparse.Namespace) -> int:
    from ..atomic import parents_made
    from ..npz.digests import content_digests
    from ..npz.writer import write_npz
    from ..simulate import simulate_source

    check_output(args.output)
    started = time.perf_counter()
    arrays = simulate_source(args.positions, args.layout, progress=args.progress)
    with parents_made(args.output):
        checksum = write_npz(args.output, arrays)
    print(f"wrote {args.output}: {args.positions} positions, layout {args.layout}")
    print(f"content_sha256  {content_digests(arrays)[0]}")
    print(f"sha256_checksum {checksum}")
    print(f"time            {time.perf_counter() - started:.2f} s")
    return EXIT_OK


def show(args: argparse.Namespace) -> int:
    from ..atomic import parents_made
    from .picture import PlotExtraMissing, render_fixture

    check_output(args.output)
    try:
        # render_fixture writes the picture as soon as it has drawn it, so its folders
        # are made first, and removed again if the fixture is refused.
        with parents_made(args.output):
            rendered = render_fixture(args.path, args.output, metadata=args.metadata)
    except PlotExtraMissing as exc:
        raise BadInput(str(exc)) from None
    view = rendered.view
    if view.sidecar is None:
        sidecar = "none found"
    else:
        agree = "matches" if view.matches_sidecar else "DIFFERS"
        sidecar = f"{view.sidecar} (content_sha256 {agree})"
    print(f"wrote {rendered.output}")
    print(f"sidecar         {sidecar}")
    print(f"{view.source_note}")
    return EXIT_OK
