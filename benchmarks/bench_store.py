"""A cold fetch from a store against a cold generation from the 35 MB source.

Builds the Run1084-sized source of ``bench_generate.py`` (``small``: (64,64,1087)
float64, stored, legacy layout), generates its fixture and committed sidecar once, and
puts the fixture into a store folder under its content digest, served over HTTP on
127.0.0.1 by a thread of this process. Each round then provides the committed fixture
to a fresh child process with no fixture on disk, as the plugin does on a cold cache
(``FixtureCache.get``), timed inside the child from the call to its return, with every
import the call makes lazily (numpy on both sides, the transport on the fetching side):

- ``generate``: no store; the fixture is generated from the 35 MB source (the baseline);
- ``fetch-http``: the loopback HTTP store, read by ``store.HttpStore`` (a GET through the
  standard library's urllib);
- ``fetch-folder``: the same entry in a folder store, through fsspec's local filesystem;
- ``fetch-fsspec-http``: the loopback HTTP store read through fsspec's HTTP filesystem
  (aiohttp) instead, the choice ``store.HttpStore`` was measured against (skipped where
  aiohttp is not installed).

The ``step`` rows are the same children's step alone, as the plugin's summary line times
it, each from its imports to a verified fixture on disk: the fetch from opening the
store to the verified download, the verifying read among it; the generation from
importing the generator to the written fixture read back and verified. (The
``fetch-fsspec-http`` child makes its store before the call, so its step leaves out
importing fsspec.)

Then the pytest rows: a whole ``pytest -q`` run of one test on a cold cache, generating
(``pytest-generate``) or fetching from either store, each a fresh process timed from
outside as a user meets it, and, inside it, the first use of the fixture (``first use``:
lock, fetch or generation, verification, and every lazy import) and its step alone
(``step``, as above, from the run's own summary figures). The test module imports
numpy in the ``numpy project`` rows and torch in the ``torch project`` rows, as a PyTorch
project's tests do; torch itself imports ``ssl``, ``http.client`` and ``urllib.request``,
which a numpy-only project's fetch imports itself.

The children alternate in every round (the order flips each round); the table gives
medians, ratios to ``generate`` (or ``pytest-generate``), and the range of per-round
ratios. ``--cold`` evicts the source and the store's entry from the page cache before
every child (posix_fadvise DONTNEED).

    python benchmarks/bench_store.py                 # 9 rounds, about a minute
    python benchmarks/bench_store.py --rounds 15 --cold
"""

from __future__ import annotations

import argparse
import compileall
import http.server
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_generate import build_source
from bench_hdf5 import evict

import pytest_ptycho_fixture
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.store import entry_name

#: One child: provide the committed fixture on a cold cache and report how long it took.
CHILD = """
import json, sys, time
from pathlib import Path
from pytest_ptycho_fixture.cache import FixtureCache
from pytest_ptycho_fixture.spec import FixtureSpec

mode, fixture, sidecar, source, store = sys.argv[1:6]
spec = FixtureSpec(Path(fixture), Path(sidecar), Path(source))
started = time.perf_counter()
cache = FixtureCache(store=None if store == "-" else store)
if mode == "fetch-fsspec-http":
    import fsspec
    from pytest_ptycho_fixture.store.filesystem import FsspecStore
    cache._store = FsspecStore(fsspec.filesystem("http"), store, store, False)
cache.get(spec)
took = time.perf_counter() - started
steps = [took for _, took in cache.stats.generations]
steps += [took for _, _, took in cache.stats.fetches]
print(json.dumps({"took": took, "generations": len(cache.stats.generations),
                  "fetches": len(cache.stats.fetches), "step": steps[0]}))
"""
#: The test of the pytest rows: numpy (or torch, as in a PyTorch project) imported at
#: collection; the first use of the fixture timed from inside the test, and written where
#: the run says.
TEST = """
import os, time
import {module}

from pytest_ptycho_fixture.plugin import STATE

def test_uses_the_fixture(request):
    started = time.perf_counter()
    arrays = request.getfixturevalue("ptycho_arrays")
    took = time.perf_counter() - started
    assert arrays["diffraction"].shape == (64, 64, 64)
    stats = request.config.stash[STATE].stats
    steps = [took for _, took in stats.generations] + [took for _, _, took in stats.fetches]
    with open(os.environ["BENCH_REPORT"], "w") as report:
        report.write(f"{{took}} {{steps[0]}}")
"""
MODES = ("generate", "fetch-http", "fetch-folder", "fetch-fsspec-http")
RUNS = ("pytest-generate", "pytest-fetch-http", "pytest-fetch-folder")
#: What the test modules of the pytest rows import.
PROJECTS = ("numpy", "torch")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Quiet, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def provide(mode: str, work: Path, store: str, cold: list[Path]) -> tuple[float, float]:
    """Seconds one child takes to provide the fixture on a cold cache in ``mode``, and
    the seconds of its step alone, as the summary line reports it."""
    fixture = work / "project" / "scan.npz"
    fixture.unlink(missing_ok=True)
    for path in cold:
        evict(path)
    argv = [
        sys.executable,
        "-c",
        CHILD,
        mode,
        str(fixture),
        str(work / "project" / "scan.json"),
        str(work / "scan.npz"),
        "-" if mode == "generate" else store,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, env=child_env(), check=False)
    if result.returncode:
        raise SystemExit(f"{mode} failed:\n{result.stderr}")
    report = json.loads(result.stdout)
    expected = (1, 0) if mode == "generate" else (0, 1)
    assert (report["generations"], report["fetches"]) == expected, (mode, report)
    return float(report["took"]), float(report["step"])


def pytest_run(
    mode: str, module: str, work: Path, store: str, cold: list[Path]
) -> tuple[float, float, float]:
    """Wall seconds of a whole ``pytest -q`` run of one test on a cold cache, whose module
    imports ``module``, of the first use of the fixture in it, and of its step alone."""
    project = work / "pytest-project"
    (project / "tests" / "fixtures").mkdir(parents=True, exist_ok=True)
    (project / "test_scan.py").write_text(TEST.format(module=module), encoding="utf-8")
    shutil.copyfile(work / "project" / "scan.json", project / "tests" / "fixtures" / "scan.json")
    lines = ["[pytest]", "ptycho_fixture_path = tests/fixtures/scan.npz"]
    lines.append(f"ptycho_fixture_source = {work / 'scan.npz'}")
    if mode != "pytest-generate":
        lines.append(f"ptycho_fixture_store = {store}")
    (project / "pytest.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (project / "tests" / "fixtures" / "scan.npz").unlink(missing_ok=True)
    for path in cold:
        evict(path)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    report = work / "first-use.txt"
    env = {**child_env(), "BENCH_REPORT": str(report)}
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=project, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{mode} failed:\n{result.stdout}{result.stderr}")
    want = "1 generation (" if mode == "pytest-generate" else "0 generations, fetched from"
    assert want in result.stdout, result.stdout
    first, step = report.read_text().split()
    return took, float(first), float(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--cold", action="store_true", help="evict the files before each child")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    compileall.compile_dir(Path(pytest_ptycho_fixture.__file__).parent, quiet=1)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ptycho-fixture-bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "scan.npz"
    if not source.exists():
        build_source(source, 1087, "HWN", False)
    (work / "project").mkdir(parents=True, exist_ok=True)
    reference = work / "reference.npz"
    generate_fixture(source, reference, 64)
    shutil.copyfile(reference.with_suffix(".json"), work / "project" / "scan.json")
    digest = load_npz(reference).content_sha256
    served = work / "store"
    served.mkdir(exist_ok=True)
    entry = served / entry_name(digest)
    shutil.copyfile(reference, entry)
    server, url = serve(served)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        modes = [mode for mode in MODES if mode != "fetch-fsspec-http"]
    else:
        modes = list(MODES)
    cold = [source, entry] if args.cold else []
    stores = {"fetch-http": url, "fetch-fsspec-http": url}
    stores["fetch-folder"] = str(served)
    stores.update({"pytest-fetch-http": url, "pytest-fetch-folder": str(served)})
    try:
        import torch  # noqa: F401
    except ImportError:
        projects: tuple[str, ...] = ("numpy",)
    else:
        projects = PROJECTS
    names = [f"{run}, {module} project" for module in projects for run in RUNS]
    first_use = [f"{name}, {part}" for name in names for part in ("step", "first use")]
    steps = [f"{mode}, step" for mode in modes]
    times: dict[str, list[float]] = {name: [] for name in [*steps, *modes, *first_use, *names]}
    try:
        for round_number in range(args.rounds):
            order = modes if round_number % 2 == 0 else modes[::-1]
            for mode in order:
                took, step = provide(mode, work, stores.get(mode, "-"), cold)
                times[mode].append(took)
                times[f"{mode}, step"].append(step)
            runs = RUNS if round_number % 2 == 0 else RUNS[::-1]
            for module in projects:
                for mode in runs:
                    whole, first, step = pytest_run(mode, module, work, stores.get(mode, "-"), cold)
                    times[f"{mode}, {module} project"].append(whole)
                    times[f"{mode}, {module} project, first use"].append(first)
                    times[f"{mode}, {module} project, step"].append(step)
    finally:
        server.shutdown()
        server.server_close()
    size = entry.stat().st_size / 1e6
    print(
        f"{args.rounds} rounds, {'cold' if args.cold else 'warm'} page cache,"
        f" source {source.stat().st_size / 1e6:.0f} MB, fixture {size:.1f} MB;"
        f" Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print()
    print("| row | median | ratio to baseline | per-round ratios |")
    print("|---|---|---|---|")
    for name, values in times.items():
        if name.startswith("pytest"):
            rest = name.partition(", ")[2]
            baseline = times[f"pytest-generate, {rest}"]
        else:
            baseline = times["generate, step" if name.endswith("step") else "generate"]
        ratios = [value / base for value, base in zip(values, baseline)]
        median = statistics.median(values)
        if values is baseline:
            print(f"| {name} (baseline) | {median:.3f} s | 1 | |")
            continue
        ratio = median / statistics.median(baseline)
        spread = f"{min(ratios):.2f}x-{max(ratios):.2f}x"
        print(f"| {name} | {median:.3f} s | **{ratio:.2f}x** | {spread} |")


if __name__ == "__main__":
    main()
