"""What the plugin costs: its load in runs that never use the fixture, the warm path, xdist.

Three measurements, each against a baseline in the same run, alternating (the order of
the pair flips every round), reported as medians in one markdown table:

1. Free plugin load: ``pytest --collect-only -q`` on a generated project of 200 trivial
   tests that never ask for the fixture, each run a fresh process, with the plugin (as
   installed) and without it (``-p no:ptycho_fixture``); plus ``python -X importtime``
   of ``pytest_ptycho_fixture.plugin`` (it must import neither numpy nor torch).
2. Warm path, in one process: the built-in default fixture cached and valid; the
   baseline ``np.load`` of every member plus one SHA-256 over their bytes, against what
   the session fixtures do, ``FixtureCache(...).get(spec)`` (lock, read, content digest,
   validation) with a fresh cache each time plus ``tensors.to_tensors(arrays, "cpu")``.
   The one-time ``import torch`` is reported on its own.
3. pytest-xdist cold against warm: ``pytest -n 4`` on 8 tests using ``ptycho_arrays``,
   with the project's ``.pytest_cache`` deleted first (cold) or kept (warm); the
   difference is compared with the generation time printed in the summary line.

The package is byte-compiled first, as pip does when it installs it, so that no run
pays for compiling Python source (``PYTHONDONTWRITEBYTECODE`` would otherwise make
every process of an editable install compile it again). pytest, though, rewrites the
asserts of every module of a plugin's package that it imports, and keeps the result
only where it may write bytecode: the pytest runs here get ``PYTHONDONTWRITEBYTECODE=1``
and none of those rewritten files, so they pay for it in every run, as in a container
that sets it or with a read-only installation. This is the worst case for the plugin.

    python benchmarks/bench_plugin.py                  # 1-2 minutes on two cores
    python benchmarks/bench_plugin.py --repeats 9 --warm-repeats 50 --profile
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import gc
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import pytest_ptycho_fixture
from pytest_ptycho_fixture import cache, spec, tensors
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.runrecord import StaleRecord

PLUGIN_MODULE = "pytest_ptycho_fixture.plugin"
FREE_TESTS, FREE_FILES = 200, 20
XDIST_TESTS, XDIST_WORKERS = 8, 4
GENERATIONS = re.compile(r"ptycho-fixture: (\d+) generations?(?: \(([^)]*)\))?")
SECTIONS = ("free", "warm", "xdist")
IMPORT_LINE = re.compile(r"import time:\s*(\d+)\s*\|\s*(\d+)\s*\|( *)(\S+)")


def child_env() -> dict[str, str]:
    """This environment without what would move pytest's cache folder or add options,
    and with no bytecode written: pytest rewrites the plugin's modules in every run."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for name in ("TOX_ENV_DIR", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
        env.pop(name, None)
    return env


def forget_rewritten(package: Path) -> None:
    """Remove the modules pytest rewrote and kept, so that every run rewrites them."""
    for kept in (package / "__pycache__").glob("*-pytest-*.pyc"):
        kept.unlink()


def children_cpu() -> float:
    """User + system seconds of the waited-for children of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cpu(command: Sequence[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds and combined output of one child process, which must succeed.

    CPU time (user + system, the child's and its waited-for children's) leaves out the
    time spent waiting for a core that other work holds.
    """
    cpu = children_cpu()
    started = time.perf_counter()
    result = subprocess.run(
        list(command), cwd=cwd, env=child_env(), capture_output=True, text=True, check=False
    )
    took = time.perf_counter() - started
    cpu = children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} (in {cwd}) exited {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return took, cpu, result.stdout + result.stderr


def run(command: Sequence[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds and combined output of one child process, which must succeed."""
    took, _, output = run_cpu(command, cwd)
    return took, output


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    """``min-max`` of ``values`` times ``scale``, for judging the noise around a median."""
    return f"{min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f}"


def alternate(
    first: Callable[[], float], second: Callable[[], float], repeats: int
) -> tuple[list[float], list[float]]:
    """Time ``first`` and ``second`` ``repeats`` times each, flipping their order each round."""
    a: list[float] = []
    b: list[float] = []
    for round_ in range(repeats):
        if round_ % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


@dataclass(frozen=True)
class Row:
    measure: str
    baseline: str
    ours: str
    result: str
    target: str
    met: bool | None

    def markdown(self) -> str:
        met = "" if self.met is None else ("yes" if self.met else "**no**")
        cells = (self.measure, self.baseline, self.ours, self.result, self.target, met)
        return "| " + " | ".join(cells) + " |"


# -- 1. free plugin load ------------------------------------------------------------------


def free_project(root: Path) -> Path:
    project = root / "free"
    tests_dir = project / "tests"
    tests_dir.mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    per_file = FREE_TESTS // FREE_FILES
    for file in range(FREE_FILES):
        body = "".join(
            f"\n\ndef test_{case}():\n    assert {case} + 1 > {case}\n" for case in range(per_file)
        )
        (tests_dir / f"test_free_{file:02d}.py").write_text(f'"""Trivial tests."""{body}')
    return project


def import_profile(code: str, cwd: Path) -> tuple[float, float, set[str]]:
    """Cumulative ms of the plugin import, ms of pytest within it, heavy packages seen."""
    _, output = run([sys.executable, "-X", "importtime", "-c", code], cwd)
    plugin = pytest_ms = 0.0
    heavy: set[str] = set()
    for line in output.splitlines():
        match = IMPORT_LINE.match(line)
        if match is None:
            continue
        cumulative, depth, name = int(match[2]) / 1000, len(match[3]), match[4]
        top = name.split(".")[0]
        if top in ("numpy", "torch"):
            heavy.add(top)
        if name == PLUGIN_MODULE:
            plugin = cumulative
        elif name == "pytest" and depth <= 3:
            pytest_ms = cumulative
    return plugin, pytest_ms, heavy


def bench_free_load(root: Path, repeats: int) -> list[Row]:
    project = free_project(root)
    base = [sys.executable, "-m", "pytest", "--collect-only", "-q"]
    without = [*base, "-p", "no:ptycho_fixture"]
    expected = f"{FREE_TESTS} tests collected"
    for command in (base, without):  # warm up: bytecode of the tests, page cache
        _, output = run(command, project)
        if expected not in output:
            raise SystemExit(f"expected {expected!r} from {' '.join(command)}:\n{output}")
    cpu: dict[str, list[float]] = {"plain": [], "loaded": []}

    def once(kind: str, command: list[str]) -> float:
        took, used, _ = run_cpu(command, project)
        cpu[kind].append(used)
        return took

    plain, loaded = alternate(
        lambda: once("plain", without), lambda: once("loaded", base), repeats
    )
    plain_s, loaded_s = statistics.median(plain), statistics.median(loaded)
    ratio = loaded_s / plain_s
    plain_cpu, loaded_cpu = statistics.median(cpu["plain"]), statistics.median(cpu["loaded"])
    # Each round's pair ran back to back, so its ratio is immune to slow drift.
    paired = statistics.median(b / a for a, b in zip(plain, loaded))

    alone = [import_profile(f"import {PLUGIN_MODULE}", project) for _ in range(repeats)]
    after_pytest = [
        import_profile(f"import pytest; import {PLUGIN_MODULE}", project)[0]
        for _ in range(repeats)
    ]
    heavy = sorted(set().union(*(seen for _, _, seen in alone)))
    cumulative = statistics.median(ms for ms, _, _ in alone)
    within_pytest = statistics.median(ms for _, ms, _ in alone)
    incremental = statistics.median(after_pytest)
    return [
        Row(
            f"free plugin load: `pytest --collect-only -q`, {FREE_TESTS} tests that never use"
            f" the fixture, fresh process each, median of {repeats}",
            f"{plain_s:.3f} s (`-p no:ptycho_fixture`; {spread(plain, digits=3)})",
            f"{loaded_s:.3f} s ({spread(loaded, digits=3)})",
            f"wall {ratio:.3f}x ({(loaded_s - plain_s) * 1000:+.0f} ms), median of the"
            f" paired ratios {paired:.3f}x; CPU {loaded_cpu / plain_cpu:.3f}x"
            f" ({plain_cpu:.3f} s -> {loaded_cpu:.3f} s)",
            "<= 1.03x",
            ratio <= 1.03,
        ),
        Row(
            f"`python -X importtime -c \"import {PLUGIN_MODULE}\"`, median of {repeats}",
            "",
            f"{cumulative:.0f} ms cumulative, of which pytest {within_pytest:.0f} ms;"
            f" {incremental:.0f} ms after `import pytest`",
            f"numpy or torch imported: {', '.join(heavy) if heavy else 'neither'}",
            "neither",
            not heavy,
        ),
    ]


# -- 2. warm path -------------------------------------------------------------------------


def numpy_baseline(path: Path) -> Callable[[], object]:
    def load() -> object:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in npz.files}
        digest = hashlib.sha256()
        for array in arrays.values():
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest(), arrays

    return load


def plugin_setup(fixture: spec.FixtureSpec, folder: Path) -> Callable[[], object]:
    def setup() -> object:
        # What the session fixtures build on first use and then ask of it.
        fixtures = cache.FixtureCache(root=folder, record=StaleRecord(folder, "bench"))
        verified = fixtures.get(fixture)
        return tensors.to_tensors(verified.arrays, "cpu")

    return setup


def timed(work: Callable[[], object]) -> Callable[[], float]:
    def once() -> float:
        gc.collect()
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    return once


def bench_warm_path(root: Path, repeats: int, profile: bool) -> tuple[list[Row], str]:
    folder = root / "warm"
    folder.mkdir()
    path, sidecar, _ = generate_fixture(None, folder / f"{spec.FIXTURE_NAME}.npz")
    fixture = spec.FixtureSpec(path, sidecar, None, 64, "stratified", True)
    shipped = json.loads(spec.SHIPPED_SIDECAR.read_text(encoding="utf-8"))

    started = time.perf_counter()
    import torch

    torch_s = time.perf_counter() - started
    baseline, ours = numpy_baseline(path), plugin_setup(fixture, folder)
    first = cache.FixtureCache(root=folder, record=StaleRecord(folder, "bench")).get(fixture)
    if first.metadata["content_sha256"] != shipped["content_sha256"]:
        raise SystemExit("the generated default fixture does not match the shipped sidecar")
    ours(), baseline()  # warm up
    plain, loaded = alternate(timed(baseline), timed(ours), repeats)
    plain_s, loaded_s = statistics.median(plain), statistics.median(loaded)
    ratio = loaded_s / plain_s

    report = ""
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeats):
            ours()
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(10)
        report = f"cProfile of {repeats} warm-path setups, top 10 by own time:\n{text.getvalue()}"

    size = path.stat().st_size / 2**20
    rows = [
        Row(
            f"warm path, one process, cached default fixture ({size:.1f} MiB NPZ), median of"
            f" {repeats}: `FixtureCache(...).get(spec)` + `to_tensors(arrays, \"cpu\")` vs"
            " `np.load` of every member + one SHA-256",
            f"{plain_s * 1000:.1f} ms ({spread(plain, 1000, 1)})",
            f"{loaded_s * 1000:.1f} ms ({spread(loaded, 1000, 1)})",
            f"{ratio:.2f}x",
            "<= 1.3x",
            ratio <= 1.3,
        ),
        Row(
            "one-time `import torch` in that process (numpy already imported), once",
            "",
            f"{torch_s:.2f} s",
            f"torch {torch.__version__}",
            "",
            None,
        ),
    ]
    return rows, report


# -- 3. xdist cold against warm -------------------------------------------------------------


def xdist_project(root: Path) -> Path:
    project = root / "xdist"
    tests_dir = project / "tests"
    tests_dir.mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    body = "".join(
        f"\n\ndef test_{case}(ptycho_arrays):\n"
        f"    assert ptycho_arrays['diffraction'][{case}].shape == (64, 64)\n"
        for case in range(XDIST_TESTS)
    )
    (tests_dir / "test_arrays.py").write_text(f'"""Tests on the fixture arrays."""{body}')
    return project


def generation_times(output: str) -> list[float]:
    """The generation times in the ``ptycho-fixture: N generation(s) (...)`` line."""
    match = GENERATIONS.search(output)
    if match is None:
        raise SystemExit(f"no ptycho-fixture summary line in:\n{output}")
    times = [float(t) for t in re.findall(r"([\d.]+) s", match[2] or "")]
    if len(times) != int(match[1]):
        raise SystemExit(f"cannot read the generation times from: {match[0]}")
    return times


def bench_xdist(root: Path, repeats: int) -> list[Row]:
    project = xdist_project(root)
    command = [
        sys.executable, "-m", "pytest", "-n", str(XDIST_WORKERS), "-q", "-p", "no:hypothesispytest"
    ]
    generations: list[float] = []
    counts: dict[str, list[int]] = {"cold": [], "warm": []}

    def once(kind: str) -> float:
        if kind == "cold":
            shutil.rmtree(project / ".pytest_cache", ignore_errors=True)
        took, output = run(command, project)
        if f"{XDIST_TESTS} passed" not in output:
            raise SystemExit(f"expected {XDIST_TESTS} passed:\n{output}")
        times = generation_times(output)
        counts[kind].append(len(times))
        if kind == "cold":
            generations.extend(times)
        print(f"  {kind} {took:.2f} s, generations {times}", file=sys.stderr)
        return took

    once("cold")  # warm up
    once("warm")
    generations.clear()
    counts = {"cold": [], "warm": []}
    cold, warm = alternate(lambda: once("cold"), lambda: once("warm"), repeats)
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    generation_s = statistics.median(generations) if generations else float("nan")
    extra = cold_s - warm_s
    return [
        Row(
            f"xdist `pytest -n {XDIST_WORKERS}`, {XDIST_TESTS} tests on `ptycho_arrays`,"
            f" cold (`.pytest_cache` deleted) vs warm, median of {repeats}; generations per"
            f" run: cold {sorted(set(counts['cold']))}, warm {sorted(set(counts['warm']))}",
            f"{warm_s:.2f} s (warm; {spread(warm)})",
            f"{cold_s:.2f} s (cold; {spread(cold)})",
            f"cold - warm = {extra:.2f} s = {extra / generation_s:.2f} generations"
            f" (one generation: {generation_s:.2f} s, median of the summary lines)",
            "<= 1 generation",
            extra <= generation_s and set(counts["cold"]) == {1} and set(counts["warm"]) == {0},
        )
    ]


# -- main -----------------------------------------------------------------------------------


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="fresh-process runs per side")
    parser.add_argument("--warm-repeats", type=int, default=30, help="in-process repetitions")
    parser.add_argument("--xdist-repeats", type=int, default=5, help="xdist runs per side")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of the warm path"
    )
    args = parser.parse_args(argv)
    if min(args.repeats, args.xdist_repeats) < 5 or args.warm_repeats < 5:
        parser.error("medians need at least 5 repetitions")
    sections = args.sections.split(",")
    if not set(sections) <= set(SECTIONS):
        parser.error(f"--sections: expected any of {', '.join(SECTIONS)}")

    package = Path(pytest_ptycho_fixture.__file__).parent
    compileall.compile_dir(package, quiet=1)
    forget_rewritten(package)
    started = time.perf_counter()
    rows: list[Row] = []
    profile = ""
    with tempfile.TemporaryDirectory(prefix="ptycho-bench-plugin-") as temp:
        root = Path(temp)
        if "free" in sections:
            print("free plugin load ...", file=sys.stderr)
            rows += bench_free_load(root, args.repeats)
        if "warm" in sections:
            print("warm path ...", file=sys.stderr)
            warm_rows, profile = bench_warm_path(root, args.warm_repeats, args.profile)
            rows += warm_rows
        if "xdist" in sections:
            print("xdist cold and warm ...", file=sys.stderr)
            rows += bench_xdist(root, args.xdist_repeats)
    elapsed = time.perf_counter() - started

    print(
        f"\n{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()},"
        f" numpy {np.__version__}, torch {version('torch')}, pytest {version('pytest')},"
        f" pytest-xdist {version('pytest-xdist')}; alternating runs, {elapsed:.0f} s in all\n"
    )
    print("| measure | baseline | plugin | result | target | met |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row.markdown())
    if profile:
        print(f"\n{profile}")


if __name__ == "__main__":
    main()
