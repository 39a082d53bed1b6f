"""The ``ptycho-fixture`` command line: generate, verify, push, info, simulate, show.

Exit status: 0 success, 1 verification mismatch, 2 bad input (one line on stderr,
nothing written), 130 interrupted by Ctrl-C (one line on stderr; what was under way is
undone).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ._version import __version__
from .progress import Progress, terminal_progress
from .spec import (
    DEFAULT_GRIDSIZE,
    DEFAULT_STORE_TIMEOUT,
    DEFAULT_STRATEGY,
    DEFAULT_SUBSET,
    LAYOUTS,
    MIN_SUBSET,
    STRATEGIES,
    OptionError,
    argparse_type,
    grouping,
    parse_fraction,
    parse_gridsize,
    parse_keys,
    parse_known_layout,
    parse_layout,
    parse_positions,
    parse_store,
    parse_store_timeout,
    parse_strategy,
    parse_subset_size,
    store_label,
)

if TYPE_CHECKING:
    from .generate import Fixture

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2
#: 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130
QUIET_HELP = "no progress bar (it is shown only when stderr is a terminal)"
#: Commands that report progress: bar description, unit, binary prefixes.
PROGRESS = {"generate": ("reading source", "B", True), "simulate": ("simulating", "pattern", False)}


class _BadInput(Exception):
    """Input that the command refuses; its text is the one line shown."""


#: What the usage line shows for an option with a fixed set of values, as ``choices=`` would.
_STRATEGY_VALUES = "{" + ",".join(STRATEGIES) + "}"
_LAYOUT_VALUES = "{" + ",".join(LAYOUTS) + "}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="ptycho-fixture",
        description="Generate, verify and inspect the canonical ptychography test fixture.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("generate", help="derive the fixture NPZ and its JSON sidecar")
    gen.add_argument(
        "--source",
        type=Path,
        help="source scan: an NPZ (e.g. Run1084_recon3_postPC_shrunk_3.npz), a CXI file, a"
        " ptychodus product file (with --diffraction) or another HDF5 file (with --keys);"
        " recognised by content (default: the built-in synthetic scan)",
    )
    gen.add_argument(
        "--diffraction",
        type=Path,
        metavar="FILE",
        help="the patterns of a ptychodus product --source: a CXI file or an NPZ",
    )
    gen.add_argument(
        "--keys",
        type=argparse_type(parse_keys, "--keys"),
        metavar="KEY=/PATH,...",
        help="the datasets of an HDF5 --source in a layout of its own, e.g."
        " diffraction=/data,xcoords=/x,ycoords=/y,probeGuess=/probe,objectGuess=/object"
        " (positions in object pixels; intensities=/path instead of diffraction= for"
        " intensities)",
    )
    gen.add_argument("--output", type=Path, required=True, help="fixture NPZ to write")
    gen.add_argument(
        "--subset-size",
        type=argparse_type(parse_subset_size, "--subset-size"),
        default=DEFAULT_SUBSET,
        help=f"positions to keep, {MIN_SUBSET}..N (default {DEFAULT_SUBSET})",
    )
    gen.add_argument(
        "--metadata-out", type=Path, help="sidecar to write (default: OUTPUT with .json)"
    )
    gen.add_argument(
        "--subset-strategy",
        type=argparse_type(parse_strategy, "--subset-strategy"),
        metavar=_STRATEGY_VALUES,
        default=DEFAULT_STRATEGY,
        help="stratified: positions floor(i*N/n), spanning the scan's ranges (default);"
        " first: positions 0..n-1; spread: one position per cell of a grid over the scan,"
        " covering it in two dimensions",
    )
    gen.add_argument(
        "--gridsize",
        type=argparse_type(parse_gridsize, "--gridsize"),
        metavar="G",
        help=f"groups only: groups of G x G, a seed and its G*G-1 nearest neighbours"
        f" (default {DEFAULT_GRIDSIZE}); the subset size must be a multiple of G*G",
    )
    gen.add_argument(
        "--min-coverage",
        type=argparse_type(parse_fraction, "--min-coverage"),
        default=0.5,
        help="least fraction of the scan's x and y range the subset must span (default 0.5)",
    )
    gen.add_argument(
        "--layout",
        type=argparse_type(parse_layout, "--layout"),
        metavar=_LAYOUT_VALUES,
        help="layout of the source diffraction, needed only when H == W == N is ambiguous",
    )
    gen.add_argument(
        "--no-diff3d-alias",
        dest="diff3d_alias",
        action="store_false",
        help="do not write the legacy 'diff3d' copy of 'diffraction' (PtychoPINN's"
        " RawData.from_file and its training command read only 'diff3d' and refuse such a"
        " fixture)",
    )
    gen.add_argument(
        "--no-compress", dest="compress", action="store_false", help="store members uncompressed"
    )
    gen.add_argument(
        "--verify-source",
        action="store_true",
        help="read all of the source: check every pattern and record its content digest"
        " (default: read only what the fixture needs)",
    )
    gen.add_argument("--quiet", action="store_true", help=QUIET_HELP)

    ver = commands.add_parser("verify", help="check a fixture against its sidecar")
    ver.add_argument("path", type=Path, help="fixture NPZ")
    ver.add_argument("--metadata", type=Path, help="sidecar (default: PATH with .json)")

    push = commands.add_parser(
        "push",
        help="upload a verified fixture to a store, named by its content digest, for the"
        " machines that fetch it (the plugin's ptycho_fixture_store)",
    )
    push.add_argument("path", type=Path, help="fixture NPZ")
    push.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="a folder, file://, s3:// or gs:// (http(s):// stores are read-only)",
    )
    push.add_argument("--metadata", type=Path, help="sidecar (default: PATH with .json)")
    push.add_argument(
        "--timeout",
        type=argparse_type(parse_store_timeout, "--timeout"),
        default=DEFAULT_STORE_TIMEOUT,
        metavar="SECONDS",
        help=f"the most the store may take to connect or to answer (default"
        f" {DEFAULT_STORE_TIMEOUT:g})",
    )

    info = commands.add_parser(
        "info",
        help="show a fixture's keys, shapes, ranges, digests; for an HDF5 source, the datasets"
        " a fixture is made from and their units",
    )
    info.add_argument("path", type=Path, help="NPZ file, or an HDF5 source")
    info.add_argument(
        "--diffraction", type=Path, metavar="FILE", help="the patterns of a ptychodus product"
    )
    info.add_argument(
        "--keys",
        type=argparse_type(parse_keys, "--keys"),
        metavar="KEY=/PATH,...",
        help="the datasets of an HDF5 source in a layout of its own (as for generate)",
    )

    sim = commands.add_parser("simulate", help="write the full built-in synthetic source")
    sim.add_argument("--output", type=Path, required=True, help="source NPZ to write")
    sim.add_argument(
        "--positions",
        type=argparse_type(parse_positions, "--positions"),
        default=1087,
        help="scan positions (default 1087)",
    )
    sim.add_argument(
        "--layout",
        type=argparse_type(parse_known_layout, "--layout"),
        metavar=_LAYOUT_VALUES,
        default="HWN",
        help="HWN: legacy (H,W,N) like Run1084 (default); NHW: canonical (N,H,W)",
    )
    sim.add_argument("--quiet", action="store_true", help=QUIET_HELP)

    show = commands.add_parser(
        "show",
        help="draw a fixture as one PNG: diffraction patterns, probe, object and scan"
        " (needs matplotlib: pip install pytest-ptycho-fixture[plot])",
    )
    show.add_argument("path", type=Path, help="fixture NPZ")
    show.add_argument("--output", type=Path, required=True, help="PNG to write")
    show.add_argument(
        "--metadata",
        type=Path,
        help="sidecar, which names the source whose positions are drawn (default: PATH with"
        " .json, else the sidecar shipped for the built-in default if the digests match)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    outputs: dict[Path, tuple[int, int, int] | None] = {}
    try:
        args = build_parser().parse_args(argv)
        outputs = {path: _identity(path) for path in _outputs(args)}
        from .contract import ContractError

        handler = {
            "generate": _generate,
            "verify": _verify,
            "push": _push,
            "info": _info,
            "simulate": _simulate,
            "show": _show,
        }[args.command]
        try:
            with _progress(args) as progress:
                args.progress = progress
                return handler(args)
        except (ContractError, _BadInput) as exc:
            message = str(exc)
        except OSError as exc:
            message = f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    except KeyboardInterrupt:
        # Temporary files and new folders are gone by now; an output replaced before
        # the interrupt (while the results were printed, say) is named, not denied.
        written = [str(path) for path, before in outputs.items() if _identity(path) != before]
        what = f" after writing {', '.join(written)}" if written else "; nothing was written"
        print(f"ptycho-fixture: interrupted{what}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"ptycho-fixture: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run() -> NoReturn:
    """Run the command line as a program and exit: the ``ptycho-fixture`` script.

    Call :func:`main` to run a command inside a process that goes on.
    """
    raise SystemExit(main())


def _progress(args: argparse.Namespace) -> AbstractContextManager[Progress | None]:
    """A progress callback for the command while it runs (``None``: report nothing)."""
    description, unit, scale = PROGRESS.get(args.command, ("", "", False))
    quiet = args.command not in PROGRESS or args.quiet
    return terminal_progress(description, unit, quiet=quiet, scale=scale)


def _outputs(args: argparse.Namespace) -> list[Path]:
    """The files the command writes (none for ``verify`` and ``info``)."""
    if args.command == "generate":
        return [args.output, _metadata_path(args)]
    return [args.output] if args.command in ("simulate", "show") else []


def _metadata_path(args: argparse.Namespace) -> Path:
    """The sidecar that ``generate`` writes."""
    from .sidecar import default_sidecar_path

    path: Path = args.metadata_out or default_sidecar_path(args.output)
    return path


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What tells a file apart from the one that replaced it (``None``: no file)."""
    try:
        stat = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns)


def _check_output(path: Path, option: str = "--output") -> None:
    """Refuse, before any work, an output that is a folder or has a file in its way.

    Its missing folders are made later, just before it is written.
    """
    from .atomic import missing_parents

    if path.is_dir():
        raise _BadInput(f"{path}: is a directory but a file path is required for {option}")
    missing_parents(path)


def _generate(args: argparse.Namespace) -> int:
    from . import locking
    from .atomic import parents_made
    from .generate import build_fixture, open_source
    from .subsets import CELLS, COVERAGE_GRID, stripes_note

    metadata_path = _metadata_path(args)
    _check_output(args.output)
    _check_output(metadata_path, "--metadata-out")
    started = time.perf_counter()
    try:
        gridsize = grouping(args.subset_strategy, args.subset_size, args.gridsize)
    except OptionError as exc:
        raise _BadInput(str(exc)) from None
    source = open_source(
        args.source,
        args.layout,
        diffraction=args.diffraction,
        keys=None if args.keys is None else dict(args.keys),
        verify=args.verify_source,
        progress=args.progress,
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
    from . import locking
    from .generate import write_fixture

    def waiting(lock: Path) -> None:
        print(f"ptycho-fixture: waiting for {lock}, held by another process", file=sys.stderr)

    sweep = (args.output, metadata_path)
    try:
        with locking.holding(args.output, locking.DEFAULT_TIMEOUT, sweep, on_wait=waiting):
            return write_fixture(fixture, args.output, metadata_path, compress=args.compress)
    except locking.LockUnavailable as exc:
        if exc.folder_not_writable:
            assert exc.errno is not None
            raise _BadInput(
                f"{args.output}: cannot create a file in {args.output.parent}:"
                f" {os.strerror(exc.errno)} (its lock file {exc.path})"
            ) from None
        waited = f" after waiting {exc.waited:g} s" if exc.waited is not None else ""
        raise _BadInput(f"{args.output}: cannot take its lock{waited}: {exc}") from None


def _against_sidecar(path: Path, metadata: Path | None) -> tuple[str, Path, str | None]:
    """Check a fixture against its sidecar (``verify`` and ``push``): its content digest,
    the sidecar's path, and the mismatch in words (``None``: it matches, and it keeps the
    data contract)."""
    from .contract import validate_fixture
    from .messages import digest_mismatch
    from .npzread import load_npz
    from .sidecar import default_sidecar_path, differing_arrays, read_sidecar

    # The fixture first: when it is missing, that is what to name, not its sidecar.
    loaded = load_npz(path)
    sidecar_path = metadata or default_sidecar_path(path)
    expected = read_sidecar(sidecar_path)
    if loaded.content_sha256 != expected["content_sha256"]:
        differ = differing_arrays(expected, loaded.array_sha256, loaded.arrays)
        mismatch = digest_mismatch(expected["content_sha256"], loaded.content_sha256, differ)
        return loaded.content_sha256, sidecar_path, mismatch
    validate_fixture(path, loaded.arrays)
    return loaded.content_sha256, sidecar_path, None


def _verify(args: argparse.Namespace) -> int:
    digest, sidecar_path, mismatch = _against_sidecar(args.path, args.metadata)
    if mismatch is None:
        print(f"OK {args.path}: content_sha256 {digest} matches {sidecar_path}")
        return EXIT_OK
    print(f"MISMATCH {args.path}: {mismatch}; sidecar {sidecar_path}", file=sys.stderr)
    return EXIT_MISMATCH


def _push(args: argparse.Namespace) -> int:
    from .store import StoreFault, entry_name, open_store

    try:
        url = parse_store(args.store, "--store", Path.cwd())
        if url is None:
            raise OptionError("--store", args.store, "store URL", "a folder or a URL")
    except OptionError as exc:
        raise _BadInput(str(exc)) from None
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
        raise _BadInput(str(exc)) from None
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


def _info(args: argparse.Namespace) -> int:
    from .digests import file_sha256
    from .hdf5read import is_hdf5
    from .npzread import load_npz

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
    from .digests import file_sha256
    from .generate import open_source

    source = open_source(
        args.path,
        diffraction=args.diffraction,
        keys=None if args.keys is None else dict(args.keys),
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


def _simulate(args: argparse.Namespace) -> int:
    from .atomic import parents_made
    from .digests import content_digests
    from .npzwrite import write_npz
    from .simulate import simulate_source

    _check_output(args.output)
    started = time.perf_counter()
    arrays = simulate_source(args.positions, args.layout, progress=args.progress)
    with parents_made(args.output):
        checksum = write_npz(args.output, arrays)
    print(f"wrote {args.output}: {args.positions} positions, layout {args.layout}")
    print(f"content_sha256  {content_digests(arrays)[0]}")
    print(f"sha256_checksum {checksum}")
    print(f"time            {time.perf_counter() - started:.2f} s")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from .atomic import parents_made
    from .show import PlotExtraMissing, render_fixture

    _check_output(args.output)
    try:
        # render_fixture writes the picture as soon as it has drawn it, so its folders
        # are made first, and removed again if the fixture is refused.
        with parents_made(args.output):
            rendered = render_fixture(args.path, args.output, metadata=args.metadata)
    except PlotExtraMissing as exc:
        raise _BadInput(str(exc)) from None
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
