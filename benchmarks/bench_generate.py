"""Generation from small and large sources: this project against the naive script.

Builds the sources once (under --workdir), then runs ``ptycho-fixture generate`` and
``naive_generate.py`` alternately, each in a fresh process, and prints one table of
medians: wall time and peak RSS (measured by ``/usr/bin/time``), with ratios. The
``default`` row is ``ptycho-fixture generate --output X.npz`` on the built-in source
(simulating its 64 positions) against the naive script on the 35 MB source; the
``deflated-zlib`` row runs the command with the ``isal`` package blocked, as on a machine
its wheels do not cover. The command runs through the script's entry point,
``cli.run()``.

Three rows put the large sources in proportion. ``floor`` is a process that only
starts Python and imports numpy (``python -c "import numpy"``), against the naive script
on the stored source: what a plain process that imports numpy costs. ``inflate`` is
a process that imports numpy and inflates the deflated member with zlib, keeping
nothing, against the naive script on the deflated source: the floor without ``isal``.
``in-process`` times both sides on the stored source inside their processes, from the
moment numpy is imported to the end (their remaining imports included), which leaves
the interpreter start and exit out; our side calls ``cli.main()`` there.

The package is byte-compiled first, as pip does when it installs it, so that neither
side pays for compiling Python source (``PYTHONDONTWRITEBYTECODE`` would otherwise
make every run of an editable install compile it again).

    python benchmarks/bench_generate.py                      # every row, 5 rounds
    python benchmarks/bench_generate.py --sources small,default --repeats 9
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCES = {
    # name: (positions, layout, compressed, description)
    "small": (1087, "HWN", False, "35 MB, (64,64,1087) float64, stored, legacy layout"),
    "stored": (32768, "NHW", False, "1.07 GB, (32768,64,64) float64, stored, canonical layout"),
    "deflated": (32768, "HWN", True, "1.07 GB float64 deflated, legacy layout"),
    "deflated-zlib": (32768, "HWN", True, "the same, inflated by zlib (isal blocked)"),
    "default": (1087, "HWN", False, "cold default: built-in source, against naive on 35 MB"),
    "floor": (32768, "NHW", False, "floor: `python -c 'import numpy'`, against naive on stored"),
    "inflate": (32768, "HWN", True, "floor: `import numpy` + zlib inflate, against naive on deflated"),
    "in-process": (32768, "NHW", False, "stored canonical, timed in-process after `import numpy`"),
}


SOURCE_FILES = {"default": "small", "deflated-zlib": "deflated",
                "floor": "stored", "inflate": "deflated", "in-process": "stored"}
#: Rows whose command generates the built-in default (no ``--source``).
BUILTIN_ROWS = ("default",)
SAME = {True: "yes", False: "NO", None: "-"}
RUN_CLI = "from pytest_ptycho_fixture.cli import run; run()"
BLOCK_ISAL = "import sys; sys.modules['isal'] = None; " + RUN_CLI
#: The ``inflate`` floor: import numpy, then inflate the diffraction member with zlib and
#: throw the bytes away (no CRC, nothing kept), in bounded pieces.
INFLATE = """import struct, sys, zipfile, zlib, numpy
path = sys.argv[1]
info = zipfile.ZipFile(path).getinfo("diffraction.npy")
with open(path, "rb") as handle:
    handle.seek(info.header_offset)
    name_size, extra_size = struct.unpack("<HH", handle.read(30)[26:])
    handle.seek(info.header_offset + 30 + name_size + extra_size)
    inflater, left = zlib.decompressobj(-zlib.MAX_WBITS), info.compress_size
    while left:
        data = handle.read(min(4 << 20, left))
        left -= len(data)
        while data:
            inflater.decompress(data, 8 << 20)
            data = inflater.unconsumed_tail
    inflater.flush()
"""
#: The in-process row: each side reports its own seconds from ``import numpy`` to the end.
TIMED = """import time, numpy, runpy, sys
started = time.perf_counter()
report = sys.argv.pop(1)
{run}
with open(report, "w") as handle:
    handle.write(str(time.perf_counter() - started))
"""
TIMED_OURS = TIMED.format(run="from pytest_ptycho_fixture.cli import main\n"
                              "if main(sys.argv[1:]):\n    raise SystemExit(1)")
TIMED_NAIVE = TIMED.format(run="sys.argv = sys.argv[1:]\n"
                               "runpy.run_path(sys.argv[0], run_name='__main__')")


def _write_member(archive: zipfile.ZipFile, key: str, array: np.ndarray) -> None:
    with archive.open(f"{key}.npy", "w", force_zip64=True) as handle:
        np.lib.format.write_array(handle, np.ascontiguousarray(array), allow_pickle=False)


def build_source(path: Path, positions: int, layout: str, compressed: bool) -> None:
    """A valid source scan: raster coordinates, quantised amplitudes (so deflate bites)."""
    from pytest_ptycho_fixture.simulate import simulate_source

    if positions == 1087:
        arrays = simulate_source(positions, layout)
    else:
        side = int(np.ceil(np.sqrt(positions)))
        grid = np.arange(positions, dtype=np.float64)
        base = simulate_source(1, layout)
        rng = np.random.default_rng(0)
        levels = rng.integers(0, 40, size=(positions, 64, 64)).astype(np.float64) / 8.0
        diffraction = levels if layout == "NHW" else np.ascontiguousarray(levels.transpose(1, 2, 0))
        arrays = {
            "diffraction": diffraction,
            "objectGuess": base["objectGuess"],
            "probeGuess": base["probeGuess"],
            "xcoords": 34.4 + (grid % side) * (44.9 / (side - 1)),
            "ycoords": 35.8 + (grid // side) * (43.3 / (side - 1)),
        }
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    temp = path.with_suffix(".part")
    with zipfile.ZipFile(temp, "w", compression=method, compresslevel=1) as archive:
        for key, array in arrays.items():
            _write_member(archive, key, array)
    temp.replace(path)


def run(command: list[str], workdir: Path, timed: bool = False) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process, measured by /usr/bin/time.

    With ``timed``, the command is a ``TIMED`` script: it gets a report path as its first
    argument and the seconds it writes there replace the wall time of the process.
    (``os.wait4`` of a child forked from this process would count this process's pages.)
    """
    report, seconds = workdir / "time.txt", workdir / "seconds.txt"
    if timed:
        command = [*command[:3], str(seconds), *command[3:]]
    wrapped = ["/usr/bin/time", "-f", "%e %M", "-o", str(report), *command]
    result = subprocess.run(
        wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr}")
    wall, peak_kb = report.read_text().split()[-2:]
    return float(seconds.read_text() if timed else wall), float(peak_kb) / 1024


def commands(name: str, source: Path, ours_out: Path, naive_out: Path) -> tuple[list[str], ...]:
    """The two commands a row alternates: this project's, then the naive script's."""
    python, naive_script = sys.executable, str(HERE / "naive_generate.py")
    naive = [python, naive_script, str(source), str(naive_out)]
    if name == "floor":
        return [python, "-c", "import numpy"], naive
    if name == "inflate":
        return [python, "-c", INFLATE, str(source)], naive
    if name == "in-process":
        generate = ["generate", "--output", str(ours_out), "--source", str(source)]
        return [python, "-c", TIMED_OURS, *generate], [python, "-c", TIMED_NAIVE, *naive[1:]]
    program = BLOCK_ISAL if name == "deflated-zlib" else RUN_CLI
    ours = [python, "-c", program, "generate", "--output", str(ours_out)]
    if name not in BUILTIN_ROWS:
        ours += ["--source", str(source)]
    return ours, naive


def same_fixture(ours: Path, naive: Path) -> bool:
    with np.load(ours) as a, np.load(naive) as b:
        return all(np.array_equal(a[key], b[key]) for key in b.files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ptycho-fixture-bench"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sources", default=",".join(SOURCES))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    import pytest_ptycho_fixture

    compileall.compile_dir(Path(pytest_ptycho_fixture.__file__).parent, quiet=1)
    rows: list[tuple[str, float, float, tuple[float, float], float, float, bool | None]] = []
    for name in args.sources.split(","):
        positions, layout, compressed, description = SOURCES[name]
        source = args.workdir / f"{SOURCE_FILES.get(name, name)}.npz"
        if not source.exists():
            print(f"building {source} ...", file=sys.stderr)
            build_source(source, positions, layout, compressed)
        ours_out, naive_out = args.workdir / f"{name}-ours.npz", args.workdir / f"{name}-naive.npz"
        ours_cmd, naive_cmd = commands(name, source, ours_out, naive_out)
        timed = name == "in-process"
        ours, naive = [], []
        for _ in range(args.repeats):
            naive.append(run(naive_cmd, args.workdir, timed))
            ours.append(run(ours_cmd, args.workdir, timed))
        wall = [statistics.median(v[0] for v in runs) for runs in (naive, ours)]
        peak = [statistics.median(v[1] for v in runs) for runs in (naive, ours)]
        paired = sorted(o[0] / n[0] for o, n in zip(ours, naive))
        same = None if name in ("floor", "inflate") else same_fixture(ours_out, naive_out)
        rows.append((description, wall[0], wall[1], (paired[0], paired[-1]), peak[0], peak[1],
                     same))
    print(f"\n{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()},"
          f" numpy {np.__version__}; medians of {args.repeats} alternating runs\n")
    print("| source | naive wall | ours wall | ratio | per-round ratios | naive peak RSS"
          " | ours peak RSS | ratio | same arrays |")
    print("|---|---|---|---|---|---|---|---|---|")
    for description, nw, ow, (low, high), nr, orss, same in rows:
        print(f"| {description} | {nw:.2f} s | {ow:.2f} s | {ow / nw:.2f}x"
              f" | {low:.2f}x-{high:.2f}x | {nr:.0f} MB | {orss:.0f} MB | {orss / nr:.2f}x"
              f" | {SAME[same]} |")


if __name__ == "__main__":
    main()
