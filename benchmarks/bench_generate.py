"""Generation from small and large sources: this project against the naive script.

Builds the sources once (under --workdir), then runs ``ptycho-fixture generate`` and
``naive_generate.py`` alternately, each in a fresh process, and prints one table of
medians: wall time and peak RSS (measured by ``/usr/bin/time``), with ratios. The
``default`` row is ``ptycho-fixture generate --output X.npz`` on the built-in source
(simulating its 64 positions) against the naive script on the 35 MB source; the
``deflated-zlib`` row runs the command with the optional ``isal`` package blocked.

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
}


SOURCE_FILES = {"default": "small", "deflated-zlib": "deflated"}
RUN_CLI = "from pytest_ptycho_fixture.cli import main; raise SystemExit(main())"
BLOCK_ISAL = "import sys; sys.modules['isal'] = None; " + RUN_CLI


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


def run(command: list[str], workdir: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process, measured by /usr/bin/time.

    (``os.wait4`` of a child forked from this process would count this process's pages.)
    """
    report = workdir / "time.txt"
    wrapped = ["/usr/bin/time", "-f", "%e %M", "-o", str(report), *command]
    result = subprocess.run(
        wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr}")
    wall, peak_kb = report.read_text().split()[-2:]
    return float(wall), float(peak_kb) / 1024


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
    rows: list[tuple[str, float, float, float, float, bool]] = []
    for name in args.sources.split(","):
        positions, layout, compressed, description = SOURCES[name]
        source = args.workdir / f"{SOURCE_FILES.get(name, name)}.npz"
        if not source.exists():
            print(f"building {source} ...", file=sys.stderr)
            build_source(source, positions, layout, compressed)
        ours_out, naive_out = args.workdir / f"{name}-ours.npz", args.workdir / f"{name}-naive.npz"
        ours_cmd = [sys.executable, "-c", BLOCK_ISAL if name == "deflated-zlib" else RUN_CLI,
                    "generate", "--output", str(ours_out)]
        if name != "default":
            ours_cmd += ["--source", str(source)]
        naive_cmd = [sys.executable, str(HERE / "naive_generate.py"), str(source), str(naive_out)]
        ours, naive = [], []
        for _ in range(args.repeats):
            naive.append(run(naive_cmd, args.workdir))
            ours.append(run(ours_cmd, args.workdir))
        wall = [statistics.median(v[0] for v in runs) for runs in (naive, ours)]
        peak = [statistics.median(v[1] for v in runs) for runs in (naive, ours)]
        same = same_fixture(ours_out, naive_out)
        rows.append((description, wall[0], wall[1], peak[0], peak[1], same))
    print(f"\n{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()},"
          f" numpy {np.__version__}; medians of {args.repeats} alternating runs\n")
    print("| source | naive wall | ours wall | ratio | naive peak RSS | ours peak RSS | ratio"
          " | same arrays |")
    print("|---|---|---|---|---|---|---|---|")
    for description, nw, ow, nr, orss, same in rows:
        print(f"| {description} | {nw:.2f} s | {ow:.2f} s | {ow / nw:.2f}x | {nr:.0f} MB"
              f" | {orss:.0f} MB | {orss / nr:.2f}x | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
