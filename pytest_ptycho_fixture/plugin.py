"""pytest hooks, options and fixtures for the canonical ptychography fixture.

The work lives in :mod:`.cache` (lock, verify, heal, regenerate) and :mod:`.tensors`
(handoff to torch). pytest loads this module in every run, and rewrites the asserts of
every module of this package that is imported; where it cannot keep the result (under
``PYTHONDONTWRITEBYTECODE``, or in a read-only installation) it does so again in every
run. So at load this module imports only what configures the run and prints its header
(:mod:`.spec`, :mod:`.stats`, :mod:`.devices`), never numpy or torch; the fixtures
import the rest when first used.
"""

from __future__ import annotations

import argparse
import math
import uuid
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import devices
from .spec import (
    CACHE_FOLDER,
    DEFAULT_STRATEGY,
    DEFAULT_SUBSET,
    LAYOUTS,
    MIN_SUBSET,
    STRATEGIES,
    FixtureSpec,
    main_spec,
    resolve_source,
    show,
    source_label,
    user_cache_folder,
)
from .stats import Stats

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

    from . import cache, tensors

SPEC = pytest.StashKey[FixtureSpec]()
STATS = pytest.StashKey[Stats]()
FOLDER = pytest.StashKey[Path]()
RUN = pytest.StashKey[str]()
#: Makes the fixture cache (:mod:`.cache`) when a fixture first needs it.
MAKE_CACHE = pytest.StashKey[Callable[[], "cache.FixtureCache"]]()
CACHE = pytest.StashKey["cache.FixtureCache"]()
DEVICE_SPEC = pytest.StashKey[str]()
DEVICES = pytest.StashKey[list[str]]()
SHARED = pytest.StashKey["tensors.SharedTensors"]()
#: Keys in pytest-xdist's ``workerinput`` / ``workeroutput``.
RUN_ID = "ptycho_fixture_run"
WORKER_STATS = "ptycho_fixture_stats"


# -- options ------------------------------------------------------------------------


def _device(text: str) -> str:
    try:
        return devices.parse_device_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _subset_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < MIN_SUBSET:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a subset size: expected a whole number >= {MIN_SUBSET}"
        )
    return value


def _strategy(text: str) -> str:
    if text not in STRATEGIES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a subset strategy: expected {' or '.join(STRATEGIES)}"
        )
    return text


def _layout(text: str) -> str:
    if text.strip() not in ("", *LAYOUTS):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a layout: expected {' or '.join(LAYOUTS)} (or nothing, to decide"
            " it from the number of coordinates)"
        )
    return text.strip()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a lock timeout: expected a number of seconds >= 0"
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptycho-fixture", "canonical ptychography fixture")
    group.addoption(
        "--regen-fixture",
        action="store_true",
        help="regenerate the fixture NPZ and rewrite its sidecar (new digests, new"
        " 'created'), once per run, then run the tests on the new data; commit the sidecar",
    )
    group.addoption(
        "--ptycho-device",
        type=_device,
        metavar="DEVICE",
        help="device of ptycho_device and ptycho_tensors: auto (CUDA if available, else"
        " CPU), cpu, cuda, cuda:N, or all (parametrize over every available device)."
        " Overrides the ptycho_device ini option (default auto)",
    )
    group.addoption(
        "--ptycho-fixture-source",
        metavar="NPZ",
        help="source dataset the fixture is derived from, e.g. a local copy of"
        " Run1084_recon3_postPC_shrunk_3.npz; 'builtin' for the built-in synthetic scan."
        " Overrides the ptycho_fixture_source ini option",
    )
    group.addoption(
        "--ptycho-fixture-lock-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="how long to wait for another process generating the fixture."
        " Overrides the ptycho_fixture_lock_timeout ini option (default 600)",
    )
    parser.addini(
        "ptycho_fixture_path",
        "fixture NPZ, relative to the rootdir, e.g."
        " tests/fixtures/pytorch_integration/minimal_dataset_v1.npz (default: in pytest's"
        " cache folder)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_metadata",
        "committed JSON sidecar the fixture is verified against (default: the fixture path"
        " with .json; with no path configured, the sidecar shipped for the built-in default)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_source",
        "source dataset NPZ, relative to the rootdir (default: the built-in synthetic scan)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_subset_size",
        f"positions in the fixture (default {DEFAULT_SUBSET})",
        default=str(DEFAULT_SUBSET),
    )
    parser.addini(
        "ptycho_fixture_subset_strategy",
        "stratified (positions spanning the scan, default) or first",
        default=DEFAULT_STRATEGY,
    )
    parser.addini(
        "ptycho_fixture_layout",
        "layout of the source diffraction, HWN (legacy) or NHW; needed only when H == W == N"
        " makes it ambiguous (default: decided from the number of coordinates)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_verify_source",
        "read all of the source when generating: check every pattern and record the"
        " source's content digest in the sidecar (default false: only what the fixture"
        " needs is read)",
        type="bool",
        default=False,
    )
    parser.addini(
        "ptycho_device",
        "auto (default), cpu, cuda, cuda:N or all; see --ptycho-device",
        default="auto",
    )
    parser.addini(
        "ptycho_fixture_lock_timeout",
        "seconds to wait for the fixture lock (default 600)",
        default="600",
    )


def _setting(config: pytest.Config, name: str, parse: Callable[[str], Any]) -> Any:
    """The command-line value of ``name`` if given, else its checked ini value."""
    value = config.getoption(name, default=None)
    if value is not None:
        return value
    text = config.getini(name)
    try:
        return parse(text)
    except argparse.ArgumentTypeError as exc:
        where = f" in {config.inipath.name}" if config.inipath else ""
        raise pytest.UsageError(f"ini option {name}{where}: {exc}") from None


def _path(config: pytest.Config, text: str) -> Path | None:
    return config.rootpath / Path(text).expanduser() if text.strip() else None


# -- configuration, header, summary -------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cuda: the test needs a CUDA device; skipped with the reason where there is none"
    )
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    pytest_cache = getattr(config, "cache", None)
    folder = pytest_cache.mkdir(CACHE_FOLDER) if pytest_cache else user_cache_folder()
    source = resolve_source(config.rootpath, _setting(config, "ptycho_fixture_source", str))
    config.stash[SPEC] = main_spec(
        path=_path(config, config.getini("ptycho_fixture_path")),
        sidecar=_path(config, config.getini("ptycho_fixture_metadata")),
        source=source,
        subset_size=_setting(config, "ptycho_fixture_subset_size", _subset_size),
        strategy=_setting(config, "ptycho_fixture_subset_strategy", _strategy),
        folder=folder,
        layout=_setting(config, "ptycho_fixture_layout", _layout) or None,
    )
    config.stash[STATS] = stats = Stats()
    config.stash[FOLDER] = folder
    config.stash[RUN] = run_id = workerinput.get(RUN_ID) or uuid.uuid4().hex
    lock_timeout = _setting(config, "ptycho_fixture_lock_timeout", _seconds)
    verify_source = bool(config.getini("ptycho_fixture_verify_source"))

    def make_cache() -> cache.FixtureCache:
        from .cache import FixtureCache

        return FixtureCache(
            lock_timeout=lock_timeout,
            worker=workerinput.get("workerid", "main"),
            run_id=run_id,
            regen=config.getoption("regen_fixture"),
            verify_source=verify_source,
            root=config.rootpath,
            folder=folder,
            stats=stats,
        )

    config.stash[MAKE_CACHE] = make_cache
    config.stash[DEVICE_SPEC] = _setting(config, "ptycho_device", _device)
    if not workerinput:
        _check_explicit_requests(config)


def _cache(config: pytest.Config) -> cache.FixtureCache:
    """The fixture cache of this process, made on first use."""
    if CACHE not in config.stash:
        config.stash[CACHE] = config.stash[MAKE_CACHE]()
    return config.stash[CACHE]


def _shared(config: pytest.Config) -> tensors.SharedTensors:
    """The session tensors of this process, with their guard, made on first use."""
    if SHARED not in config.stash:
        from .tensors import SharedTensors

        spec = config.stash[SPEC]
        config.stash[SHARED] = SharedTensors(
            reload=lambda: _cache(config).reload(spec), fixture=show(config.rootpath, spec.path)
        )
    return config.stash[SHARED]


def _check_explicit_requests(config: pytest.Config) -> None:
    """Refuse, at start-up, requests that cannot be honoured."""
    device = config.stash[DEVICE_SPEC]
    if device.startswith("cuda"):
        try:
            devices.check_available(device)
        except devices.DeviceUnavailable as exc:
            origin = "--ptycho-device" if config.getoption("ptycho_device") else "ptycho_device"
            raise pytest.UsageError(f"{origin}: {exc}") from None
    spec = config.stash[SPEC]
    if config.getoption("regen_fixture") and spec.shipped:
        raise pytest.UsageError(
            f"--regen-fixture would rewrite the sidecar shipped inside pytest-ptycho-fixture"
            f" ({spec.sidecar}); set the ptycho_fixture_path ini option (its sidecar is the"
            " same path with .json) or ptycho_fixture_metadata to keep a sidecar in your"
            " project"
        )


def pytest_report_header(config: pytest.Config) -> str:
    spec, root = config.stash[SPEC], config.rootpath
    kind = " (shipped)" if spec.shipped else "" if spec.committed else " (made with the fixture)"
    return (
        f"ptycho-fixture: {show(root, spec.path)}, sidecar {show(root, spec.sidecar)}"
        f"{kind}, source {source_label(root, spec)}"
        f" ({spec.subset_size} positions, {spec.strategy}),"
        f" device {devices.header_device(config.stash[DEVICE_SPEC])}"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Before pytest-xdist starts workers (its hook runs last), so they only verify.
    config = session.config
    if config.getoption("regen_fixture") and not hasattr(config, "workerinput"):
        from .cache import FixtureError

        try:
            _cache(config).regenerate(config.stash[SPEC])
        except FixtureError as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[RUN_ID] = node.config.stash[RUN]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    stats = getattr(node, "workeroutput", {}).get(WORKER_STATS)
    if stats is not None:
        node.config.stash[STATS].merge(stats)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKER_STATS] = session.config.stash[STATS].to_dict()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash[STATS].summary():
        terminalreporter.write_line(line)


# -- devices and the shared-tensor guard ------------------------------------------


def _devices(config: pytest.Config) -> list[str]:
    if DEVICES not in config.stash:
        worker = getattr(config, "workerinput", {}).get("workerid")
        spec = config.stash[DEVICE_SPEC]
        config.stash[DEVICES] = devices.worker_device(worker, spec, devices.cuda_count())
    return config.stash[DEVICES]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    if "ptycho_device" in metafunc.fixturenames and config.stash[DEVICE_SPEC] == "all":
        devices = _devices(config)
        metafunc.parametrize("ptycho_device", devices, ids=devices, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if marked and devices.cuda_count() == 0:
        skip = pytest.mark.skip(reason=f"needs a CUDA device: {devices.cuda_unavailable_reason()}")
        for item in marked:
            item.add_marker(skip)


def _guard(item: pytest.Item) -> None:
    shared = item.config.stash.get(SHARED, None)
    if shared is None:
        return
    from .cache import FixtureError

    try:
        message = shared.check(item.nodeid)
    except FixtureError as exc:
        message = str(exc)
    if message:
        pytest.fail(message, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    try:
        return (yield)
    finally:
        _guard(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    try:
        return (yield)
    finally:
        _guard(item)


# -- fixtures -------------------------------------------------------------------------


def _verified(config: pytest.Config) -> cache.Verified:
    return _cache(config).get_or_fail(config.stash[SPEC])


@pytest.fixture(scope="session")
def ptycho_fixture_path(request: pytest.FixtureRequest) -> Path:
    """Path to the fixture NPZ, verified against its sidecar (generated on first use).

    Configure it with the ``ptycho_fixture_*`` ini options; see ``pytest --help``.
    """
    return _verified(request.config).spec.path


@pytest.fixture(scope="session")
def ptycho_metadata(request: pytest.FixtureRequest) -> Mapping[str, Any]:
    """The fixture's sidecar (digests, source, subset, transformations), read-only."""
    return _verified(request.config).metadata


@pytest.fixture(scope="session")
def ptycho_arrays(request: pytest.FixtureRequest) -> Mapping[str, NDArray[Any]]:
    """The fixture's arrays by key (``diffraction``, ``probeGuess``, ...), read-only numpy."""
    return _verified(request.config).arrays


@pytest.fixture(scope="session")
def ptycho_device(request: pytest.FixtureRequest) -> torch.device:
    """The selected ``torch.device`` (``--ptycho-device``; ``all`` parametrizes over each)."""
    device = getattr(request, "param", None) or _devices(request.config)[0]
    try:
        chosen = devices.torch_device(device)
    except devices.TorchMissing as exc:
        message = f"ptycho-fixture: {exc}"
    else:
        request.config.stash[STATS].note_device(devices.describe_device(device))
        return chosen
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def ptycho_tensors(
    request: pytest.FixtureRequest, ptycho_device: torch.device
) -> tensors.PtychoTensors:
    """The fixture as tensors on ``ptycho_device``, shared by every test: do not modify.

    ``diffraction`` (N, H, W) float32, ``probe`` and ``object`` complex64, ``coords``
    (N, 2) float64 ``(x, y)``, and ``xcoords_start``, ``ycoords_start``, ``scan_index``
    (``None`` when absent). A test that modifies one in place fails, and the tensors are
    restored for the next tests; use ``ptycho_batch`` for a copy you may modify.
    """
    arrays = _verified(request.config).arrays
    return _shared(request.config).get(arrays, str(ptycho_device))


@pytest.fixture
def ptycho_batch(ptycho_tensors: tensors.PtychoTensors) -> tensors.PtychoTensors:
    """A private copy of ``ptycho_tensors`` for one test, which it may modify freely."""
    return ptycho_tensors.clone()


@pytest.fixture(scope="session")
def ptycho_fixture_factory(request: pytest.FixtureRequest) -> cache.Factory:
    """``factory(subset_size=..., strategy=..., source=...) -> Path`` for other variants.

    Omitted arguments take the configured values; ``source="builtin"`` is the built-in
    scan. Each variant is generated once into the cache folder, named by a hash of its
    parameters, and verified against the sidecar generated with it.
    """
    from .cache import Factory

    config = request.config
    return Factory(_cache(config), config.stash[FOLDER], config.stash[SPEC], config.rootpath)
