"""Generation from a 1 GiB CXI file: this project against a naive h5py script.

Builds the source once (under --workdir, reused while it has the expected layout): a
CXI file whose ``/entry_1/data_1/data`` is 1 GiB of float32 photon counts, ``(65536, 64,
64)`` for ``--detector 64`` (the fixture's detector, as Run1084's) or ``(4096, 256, 256)``
for ``--detector 256``: Poisson draws around a bright centre that falls off as a far-field
pattern does, chunked one frame a chunk, uncompressed. Translations lie on a Fermat
spiral (50 nm mean spacing, jittered); detector distance 0.75 m, 75 um pixels, 8 keV; a
gaussian probe; no object guess (the generator makes a unit object over the scan). A
spiral, not a raster: the default stratified rule, ``floor(i * N / 64)``, would take a
single column of a 64-wide raster, which the generator refuses for coverage.

Both sides run in this process, timed with ``time.perf_counter``, alternating, median of
``--rounds``. Ours is ``generate_fixture(source, output)`` with its defaults (64 positions,
stratified, compressed NPZ and JSON sidecar; the sidecar must record ``source_format ==
"cxi"``). The baseline is what a hand-written script does: read the whole dataset with
h5py (``f[name][()]``), take 64 evenly spaced frames with numpy, square-root them to
amplitudes (float32), and write them, their coordinates and the probe with ``np.savez``.
One warm-up run of each side comes first, so that both read the file from the OS page
cache: the rows measure the work of each side, not the disk. With ``--cold`` the source's
pages are dropped from the cache before every timed run, so that both read from disk.

Peak RSS is measured apart, in a fresh child process per side and round, running the same
function; the child reports the high-water mark of its own memory (``VmHWM`` in
``/proc/self/status``, or ``ru_maxrss`` where there is no ``/proc``). A child started
from this process by ``vfork`` inherits this process's peak in ``ru_maxrss``, which after
the baseline's rounds is over 1 GiB; ``VmHWM`` belongs to the child's own address space.

Targets: ours at most 0.1x of the naive wall time, and ours at most 150 MB peak RSS.

    python benchmarks/bench_hdf5.py --rounds 7 --detector 64
    python benchmarks/bench_hdf5.py --rounds 5 --detector 256 --workdir /tmp/cxi-bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: The dataset's size: 1 GiB of float32 whatever the detector side.
DATA_BYTES = 1 << 30
#: Bytes written at a time when building the source: 64 MiB.
BLOCK_BYTES = 64 << 20
SUBSET = 64
DATA = "/entry_1/data_1/data"
TRANSLATION = "/entry_1/sample_1/geometry_1/translation"
INSTRUMENT = "/entry_1/instrument_1"
PROBE = f"{INSTRUMENT}/source_1/illumination"
STEP_M = 50e-9
#: Recorded in the file: a source from an earlier layout of this script is rebuilt.
LAYOUT = "fermat-spiral-poisson-2"
TARGET_RATIO = 0.1
TARGET_RSS_MB = 150.0
#: A child process: run one side on the source once, then print its peak RSS in KiB.
CHILD = """import sys
sys.path.insert(0, {here!r})
from bench_hdf5 import SIDES, peak_rss_kib
SIDES[sys.argv[1]](sys.argv[2], sys.argv[3])
print(peak_rss_kib())
"""


def peak_rss_kib() -> int:
    """This process's peak resident memory, KiB: its own address space's high-water mark."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


def source_ok(path: Path, frames: int, detector: int) -> bool:
    """Whether ``path`` is a source this script built with ``frames`` frames."""
    import h5py

    if not path.is_file() or path.stat().st_size < frames * detector * detector * 4:
        return False
    try:
        with h5py.File(path, "r") as f:
            data = f[DATA]
            return bool(
                data.shape == (frames, detector, detector)
                and data.dtype == np.float32
                and data.chunks == (1, detector, detector)
                and data.compression is None
                and f[TRANSLATION].shape == (frames, 3)
                and PROBE in f
                and f.attrs.get("benchmark_layout") == LAYOUT
            )
    except OSError:
        return False


def build_source(path: Path, frames: int, detector: int) -> None:
    """Write the CXI source in blocks of ``BLOCK_BYTES`` (deterministic, seed 0)."""
    import h5py

    rng = np.random.default_rng(0)
    block_frames = max(1, BLOCK_BYTES // (detector * detector * 4))
    # Fermat spiral: one position per STEP_M**2 of disc, at the golden angle.
    grid = np.arange(frames)
    radius, angle = STEP_M * np.sqrt(grid / np.pi), grid * np.pi * (3 - np.sqrt(5))
    translation = np.zeros((frames, 3))
    translation[:, 0] = radius * np.cos(angle) + rng.uniform(-5e-9, 5e-9, frames)
    translation[:, 1] = radius * np.sin(angle) + rng.uniform(-5e-9, 5e-9, frames)
    axis = np.arange(detector) - detector / 2
    r2 = axis[None, :] ** 2 + axis[:, None] ** 2
    width = detector / 12
    probe = (np.exp(-r2 / (2 * width**2)) * np.exp(1j * 1e-3 * r2)).astype(np.complex64)
    # Photon counts: Poisson draws around a bright centre that falls off as a far-field
    # pattern does, so that most pixels away from the centre hold 0 or a few photons.
    envelope = 1e4 / (1 + r2 / (detector / 16) ** 2) ** 2
    temp = path.with_suffix(".part")
    with h5py.File(temp, "w") as f:
        f.attrs["benchmark_layout"] = LAYOUT
        f.create_dataset(TRANSLATION, data=translation)
        f.create_dataset(f"{INSTRUMENT}/detector_1/distance", data=0.75)
        f.create_dataset(f"{INSTRUMENT}/detector_1/x_pixel_size", data=75e-6)
        f.create_dataset(f"{INSTRUMENT}/detector_1/y_pixel_size", data=75e-6)
        f.create_dataset(f"{INSTRUMENT}/source_1/energy", data=8000 * 1.602176634e-19)
        f.create_dataset(PROBE, data=probe)
        data = f.create_dataset(
            DATA, shape=(frames, detector, detector), dtype=np.float32,
            chunks=(1, detector, detector),
        )
        speckle = rng.random((block_frames, detector, detector))
        for start in range(0, frames, block_frames):
            count = min(block_frames, frames - start)
            lam = envelope * speckle[:count] * rng.random()
            data[start:start + count] = rng.poisson(lam).astype(np.float32)
    temp.replace(path)


def ours(source: str, output: str) -> None:
    """This project: ``generate_fixture`` with its defaults; the sidecar must say CXI."""
    from pytest_ptycho_fixture.generate import generate_fixture

    result = generate_fixture(source, output)
    metadata = json.loads(Path(result.metadata_path).read_text())
    if metadata.get("source_format") != "cxi":
        raise SystemExit(f"sidecar source_format is {metadata.get('source_format')!r}, not 'cxi'")


def naive(source: str, output: str) -> None:
    """The hand-written script: read everything, take 64 frames, sqrt, float32, savez."""
    import h5py

    with h5py.File(source, "r") as f:
        data = f[DATA][()]
        translation = f[TRANSLATION][()]
        probe = f[PROBE][()]
    index = np.array([i * data.shape[0] // SUBSET for i in range(SUBSET)])
    np.savez(
        output,
        diffraction=np.sqrt(data[index]).astype(np.float32),
        xcoords=translation[index, 0],
        ycoords=translation[index, 1],
        probeGuess=probe.astype(np.complex64),
    )


def ours_read(source: str, output: str) -> None:
    """This project's reading only: open the source, take the subset's patterns; no write."""
    from pytest_ptycho_fixture.sources import open_source
    from pytest_ptycho_fixture.subsets import subset_indices

    scan = open_source(source)
    xs, ys = scan.small["xcoords"], scan.small["ycoords"]
    scan.take_patterns(subset_indices("stratified", xs, ys, SUBSET))


def naive_read(source: str, output: str) -> None:
    """The hand-written script's reading only: all of the dataset, then 64 frames."""
    import h5py

    with h5py.File(source, "r") as f:
        data = f[DATA][()]
    index = np.array([i * data.shape[0] // SUBSET for i in range(SUBSET)])
    np.sqrt(data[index]).astype(np.float32)


SIDES: dict[str, Callable[[str, str], None]] = {
    "ours": ours,
    "naive": naive,
    "ours-read": ours_read,
    "naive-read": naive_read,
}
#: The rows: (label, baseline side, our side).
ROWS = (("generate", "naive", "ours"), ("read only", "naive-read", "ours-read"))


def evict(path: Path) -> None:
    """Drop ``path``'s pages from the OS page cache, so that the next read is from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(side: str, source: Path, output: Path, cold: bool = False) -> float:
    """Wall seconds of one in-process run of ``side`` (``cold``: the source evicted first)."""
    if cold:
        evict(source)
    started = time.perf_counter()
    SIDES[side](str(source), str(output))
    return time.perf_counter() - started


def child_peak_mb(side: str, source: Path, output: Path) -> float:
    """Peak RSS (MB) of a fresh process running ``side`` once."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(here=str(HERE)), side, str(source), str(output)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{side} child failed: {result.stderr}")
    return int(result.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", "--work", type=Path,
        default=Path(tempfile.gettempdir()) / "ptycho-fixture-bench-hdf5",
        help="where the source and the outputs go (default: a folder in the temp directory)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--detector", type=int, default=64,
        help="detector side: 64 (the fixture's, as Run1084's; 65536 frames) or e.g. 256"
        " (4096 frames); the dataset is 1 GiB either way",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="evict the source from the page cache before every timed run (posix_fadvise"
        " DONTNEED), so that both sides read from disk",
    )
    parser.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    detector = args.detector
    frames = args.frames or DATA_BYTES // (detector * detector * 4)
    source = args.workdir / f"source-{frames}x{detector}.cxi"
    if not source_ok(source, frames, detector):
        print(f"building {source} ...", file=sys.stderr)
        build_source(source, frames, detector)
    outputs = {side: args.workdir / f"{side}.npz" for side in SIDES}
    for side in SIDES:  # warm-up: the source is in the page cache for both
        timed(side, source, outputs[side])
    walls: dict[str, list[float]] = {side: [] for side in SIDES}
    peaks: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(args.rounds):
        for _, base, mine in ROWS:
            for side in (base, mine):
                walls[side].append(timed(side, source, outputs[side], args.cold))
    for _ in range(args.rounds):
        for side in SIDES:
            peaks[side].append(child_peak_mb(side, source, outputs[side]))
    state = "source evicted before each run" if args.cold else "page cache warm"
    print(f"\n{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()},"
          f" numpy {np.__version__}; in-process medians of {args.rounds} alternating rounds"
          f" after one warm-up each ({state}); peak RSS of fresh child processes\n")
    print(f"CXI {source.stat().st_size / 1e9:.2f} GB, ({frames},{detector},{detector}) float32,"
          f" chunked per frame, stored; {SUBSET} positions\n")
    print("| row | naive wall | ours wall | ratio | per-round ratios"
          f" | target <= {TARGET_RATIO}x | naive peak RSS | ours peak RSS | ratio"
          f" | target <= {TARGET_RSS_MB:.0f} MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, base, mine in ROWS:
        nw, ow = statistics.median(walls[base]), statistics.median(walls[mine])
        nr, orss = statistics.median(peaks[base]), statistics.median(peaks[mine])
        paired = sorted(o / n for o, n in zip(walls[mine], walls[base]))
        ratio = ow / nw
        wall_met = "met" if ratio <= TARGET_RATIO else "MISSED"
        rss_met = "met" if orss <= TARGET_RSS_MB else "MISSED"
        print(f"| {label} | {nw:.3f} s | {ow:.3f} s | {ratio:.3f}x"
              f" | {paired[0]:.3f}x-{paired[-1]:.3f}x | {wall_met} | {nr:.0f} MB"
              f" | {orss:.0f} MB | {orss / nr:.2f}x | {rss_met} |")

if __name__ == "__main__":
    main()
