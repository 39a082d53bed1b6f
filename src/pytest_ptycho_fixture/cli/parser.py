"""The ``ptycho-fixture`` argument parser: every command, option and help text."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._version import __version__
from ..spec import (
    DEFAULT_GRIDSIZE,
    DEFAULT_STORE_TIMEOUT,
    DEFAULT_STRATEGY,
    DEFAULT_SUBSET,
    EXPORT_FORMATS,
    LAYOUTS,
    MIN_SUBSET,
    STRATEGIES,
    argparse_type,
    parse_export_format,
    parse_fraction,
    parse_geometry,
    parse_gridsize,
    parse_keys,
    parse_known_layout,
    parse_layout,
    parse_positions,
    parse_store_timeout,
    parse_strategy,
    parse_subset_size,
)

QUIET_HELP = "no progress bar (it is shown only when stderr is a terminal)"
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
        help="the patterns of a ptychodus product --source: a CXI file, ptychodus'"
        " diffraction.h5, or an NPZ",
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
    gen.add_argument(
        "--geometry",
        type=argparse_type(parse_geometry, "--geometry"),
        metavar="energy_ev=E,distance_m=Z,pixel_m=P",
        help="the geometry of a source that holds none (an NPZ): photon energy in eV, detector"
        " distance and detector pixel in metres, recorded in the sidecar (CXI and product"
        " files hold their own; the built-in source declares one)",
    )
    gen.add_argument(
        "--probe",
        type=Path,
        metavar="FILE",
        help="the probe of a CXI --source that holds none: an NPY of one complex (H, W) array,"
        " or an NPZ with probeGuess (default: estimated from the patterns)",
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
        " covering it in two dimensions; groups: groups of --gridsize x --gridsize"
        " neighbours, a seed and its nearest",
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
    info.add_argument(
        "--probe", type=Path, metavar="FILE", help="the probe of a CXI source that holds none"
    )

    export = commands.add_parser(
        "export",
        help="write a fixture, verified against its sidecar, in another code's format:"
        " ptychodus (product.h5 and diffraction.h5) or cxi (cdtools' from_cxi, ptychodus)",
    )
    export.add_argument("path", type=Path, help="fixture NPZ")
    export.add_argument(
        "--format",
        required=True,
        type=argparse_type(parse_export_format, "--format"),
        metavar="{" + ",".join(EXPORT_FORMATS) + "}",
        help="ptychodus: a folder with product.h5 and diffraction.h5, as ptychodus 1.7 writes"
        " them; cxi: one CXI file",
    )
    export.add_argument(
        "--output",
        type=Path,
        required=True,
        help="the folder (ptychodus) or the .cxi file (cxi) to write",
    )
    export.add_argument("--metadata", type=Path, help="sidecar (default: PATH with .json)")
    export.add_argument(
        "--geometry",
        type=argparse_type(parse_geometry, "--geometry"),
        metavar="energy_ev=E,distance_m=Z,pixel_m=P",
        help="the geometry that places the fixture in metres, where its sidecar records none",
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
