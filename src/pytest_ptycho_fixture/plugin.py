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

import os
import shlex
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, final

import pytest

from . import devices
from .spec import (
    CACHE_FOLDER,
    DEFAULT_GRIDSIZE,
    DEFAULT_SET,
    DEFAULT_STORE_TIMEOUT,
    DEFAULT_STRATEGY,
    DEFAULT_SUBSET,
    OFFLINE_ENV,
    REGEN_ALL,
    SETS_FOLDER,
    FixtureSpec,
    OptionError,
    argparse_type,
    cached_spec,
    detached_value,
    grouping,
    main_spec,
    parse_device,
    parse_geometry,
    parse_keys,
    parse_layout,
    parse_regen,
    parse_seconds,
    parse_sets,
    parse_store,
    parse_store_timeout,
    parse_strategy,
    parse_subset_size,
    parse_switch,
    resolve_file,
    resolve_source,
    show,
    source_label,
    store_label,
    store_scheme,
    user_cache_folder,
)
from .stats import Stats

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

    from .cache import FixtureCache, Verified
    from .messages import FixtureError
    from .sets import FixtureSet
    from .tensors import PtychoTensors, SharedTensors

_T = TypeVar("_T")

#: Keys in pytest-xdist's ``workerinput`` / ``workeroutput``.
RUN_ID = "ptycho_fixture_run"
WORKER_STATS = "ptycho_fixture_stats"


# -- the run's state ------------------------------------------------------------------


def _fail(error: FixtureError) -> NoReturn:
    """Fail the test with the error's one line, no traceback (call it outside ``except``)."""
    pytest.fail(str(error), pytrace=False)


@final
@dataclass
class RunState:
    """What the plugin keeps for one run in one process, parsed once at configure time.

    The fixture cache, the devices and the session tensors are made when first needed, so
    that a run that uses no fixture imports neither numpy nor torch.
    """

    spec: FixtureSpec
    #: The cache folder, where variants and the run's notes live.
    folder: Path
    root: Path
    #: Shared by the processes of one run (the pytest-xdist controller hands it on).
    run_id: str
    #: ``workerid`` under pytest-xdist, else ``None``.
    worker: str | None
    device: str
    lock_timeout: float
    #: Plain ``--regen-fixture``: every set, and the cache-folder variants as they are used.
    regen: bool
    verify_source: bool
    #: The store's URL or folder (``None``: no store), its timeout, whether to push to it.
    store: str | None
    store_timeout: float
    store_push: bool
    #: Offline mode: nothing is generated.
    offline: bool
    #: The fixture sets by name: :data:`DEFAULT_SET` (``spec``), then ``ptycho_fixture_sets``.
    sets: Mapping[str, FixtureSpec] = field(default_factory=dict)
    #: The sets whose sidecars the controller rewrites before the tests (``--regen-fixture``).
    regenerate: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    _cache: FixtureCache | None = None
    _devices: list[str] | None = None
    _shared: SharedTensors | None = None
    _set_shared: dict[str, SharedTensors] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: pytest.Config) -> RunState:
        workerinput: dict[str, Any] = getattr(config, "workerinput", {})
        pytest_cache = getattr(config, "cache", None)
        folder = pytest_cache.mkdir(CACHE_FOLDER) if pytest_cache else user_cache_folder()
        source = resolve_source(config.rootpath, _setting(config, "ptycho_fixture_source", _text))
        subset_size = _setting(config, "ptycho_fixture_subset_size", parse_subset_size)
        strategy = _setting(config, "ptycho_fixture_subset_strategy", parse_strategy)
        try:
            gridsize = grouping(
                strategy,
                subset_size,
                config.getini("ptycho_fixture_gridsize"),
                _ini(config, "ptycho_fixture_gridsize"),
            )
        except OptionError as exc:
            raise pytest.UsageError(str(exc)) from None
        path = _path(config, config.getini("ptycho_fixture_path"))
        layout = _setting(config, "ptycho_fixture_layout", parse_layout)
        diffraction = _path(config, config.getini("ptycho_fixture_diffraction"))
        keys = _setting(config, "ptycho_fixture_keys", parse_keys)
        geometry = _setting(config, "ptycho_fixture_geometry", parse_geometry)
        probe = _path(config, config.getini("ptycho_fixture_probe"))
        spec = main_spec(
            path=path,
            sidecar=_path(config, config.getini("ptycho_fixture_metadata")),
            source=source,
            subset_size=subset_size,
            strategy=strategy,
            folder=folder,
            layout=layout,
            gridsize=gridsize,
            diffraction=diffraction,
            keys=keys,
            geometry=geometry,
            probe=probe,
        )
        try:
            declared = parse_sets(
                config.getini("ptycho_fixture_sets"),
                _ini(config, "ptycho_fixture_sets"),
                root=config.rootpath,
                folder=path.parent if path is not None else config.rootpath / SETS_FOLDER,
                main=spec,
                layout=layout,
            )
            sets = {DEFAULT_SET: spec, **declared}
            asked: str | None = config.getoption("regen_fixture")
            regenerate = [] if asked is None else parse_regen(asked, sets)
            given = config.getoption("ptycho_fixture_store")
            store = parse_store(
                config.getini("ptycho_fixture_store") if given is None else given,
                _ini(config, "ptycho_fixture_store") if given is None else "--ptycho-fixture-store",
                config.rootpath,
            )
            offline = bool(config.getoption("ptycho_fixture_offline")) or parse_switch(
                os.environ.get(OFFLINE_ENV, ""), f"the environment variable {OFFLINE_ENV}"
            )
        except OptionError as exc:
            raise pytest.UsageError(str(exc)) from None
        return cls(
            spec=spec,
            folder=folder,
            root=config.rootpath,
            run_id=workerinput.get(RUN_ID) or uuid.uuid4().hex,
            worker=workerinput.get("workerid"),
            device=_setting(config, "ptycho_device", parse_device),
            lock_timeout=_setting(config, "ptycho_fixture_lock_timeout", parse_seconds),
            regen=asked == REGEN_ALL,
            verify_source=bool(config.getini("ptycho_fixture_verify_source")),
            store=store,
            store_timeout=_setting(config, "ptycho_fixture_store_timeout", parse_store_timeout),
            store_push=bool(config.getini("ptycho_fixture_store_push")),
            offline=offline,
            sets=sets,
            regenerate=regenerate,
        )

    @property
    def cache(self) -> FixtureCache:
        """The fixture cache of this process, made on first use."""
        if self._cache is None:
            from .cache import FixtureCache
            from .runrecord import StaleRecord

            self._cache = FixtureCache(
                lock_timeout=self.lock_timeout,
                worker=self.worker or "main",
                run_id=self.run_id,
                regen=self.regen,
                verify_source=self.verify_source,
                root=self.root,
                record=StaleRecord(self.folder, self.run_id),
                stats=self.stats,
                store=self.store,
                store_timeout=self.store_timeout,
                store_push=self.store_push,
                offline=self.offline,
            )
        return self._cache

    def verified(self, spec: FixtureSpec | None = None) -> Verified:
        """The verified fixture (the configured one by default); an error fails the test."""
        from .messages import FixtureError

        try:
            return self.cache.get(spec or self.spec)
        except FixtureError as exc:
            error = exc
        _fail(error)  # outside the except: the line alone, not chained to the error

    @property
    def devices(self) -> list[str]:
        """The devices of this process: one, or every available one for ``all``."""
        if self._devices is None:
            self._devices = devices.worker_device(self.worker, self.device, devices.cuda_count())
        return self._devices

    @property
    def shared_if_made(self) -> list[SharedTensors]:
        """The session tensors the tests have used: the main fixture's and each set's."""
        made = [] if self._shared is None else [self._shared]
        return made + list(self._set_shared.values())

    @property
    def shared(self) -> SharedTensors:
        """The session tensors of this process, with their guard, made on first use."""
        if self._shared is None:
            from .tensors import SharedTensors

            spec = self.spec
            self._shared = SharedTensors(
                reload=lambda: self.cache.reload(spec), fixture=show(self.root, spec.path)
            )
        return self._shared

    def open_set(self, name: str) -> FixtureSet:
        """The set ``name``, verified (generated if need be); an error fails the test."""
        from .sets import FixtureSet

        verified = self.verified(self.sets[name])
        self.stats.note_set(name)
        return FixtureSet(name, verified, lambda: self._set_tensors(name, verified))

    def torch_device(self, device: str) -> torch.device:
        """``device`` as a ``torch.device``, noted for the summary; without torch the test
        fails with the line that says how to install it."""
        try:
            chosen = devices.torch_device(device)
        except devices.TorchMissing as exc:
            message = f"ptycho-fixture: {exc}"
        else:
            self.stats.note_device(devices.describe_device(device))
            return chosen
        pytest.fail(message, pytrace=False)

    def _set_tensors(self, name: str, verified: Verified) -> PtychoTensors:
        """A set's session tensors on the first selected device, under the guard."""
        device = self.devices[0]
        self.torch_device(device)
        return self._shared_set(name).get(verified.arrays, device)

    def _shared_set(self, name: str) -> SharedTensors:
        if name == DEFAULT_SET:
            return self.shared  # the very tensors of ptycho_tensors
        if name not in self._set_shared:
            from .tensors import SharedTensors

            spec = self.sets[name]
            self._set_shared[name] = SharedTensors(
                reload=lambda: self.cache.reload(spec),
                fixture=show(self.root, spec.path),
                name=f"ptycho_sets[{name!r}].tensors",
                private_copy=f"call ptycho_sets[{name!r}].tensors.clone()",
            )
        return self._set_shared[name]


STATE = pytest.StashKey[RunState]()


# -- options --------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ptycho-fixture", "canonical ptychography fixture")
    group.addoption(
        "--regen-fixture",
        nargs="?",
        const=REGEN_ALL,
        metavar="NAME[,NAME]",
        help="regenerate the fixture NPZ and rewrite its sidecar (new digests, new"
        " 'created'), once per run, then run the tests on the new data; commit the sidecar."
        " Without a value: the main fixture and every set of ptycho_fixture_sets;"
        " --regen-fixture=NAME[,NAME]: only those sets (default is the main fixture)."
        " Before a test path, write --regen-fixture -- PATH",
    )
    group.addoption(
        "--ptycho-device",
        type=argparse_type(parse_device, "--ptycho-device"),
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
        " Overrides the ptycho_fixture_source ini option. Write it with '='"
        " (--ptycho-fixture-source=PATH): pytest would take a separate PATH for a test path",
    )
    group.addoption(
        "--ptycho-fixture-lock-timeout",
        type=argparse_type(parse_seconds, "--ptycho-fixture-lock-timeout"),
        metavar="SECONDS",
        help="how long to wait for another process generating the fixture."
        " Overrides the ptycho_fixture_lock_timeout ini option (default 600)",
    )
    group.addoption(
        "--ptycho-fixture-store",
        metavar="URL",
        help="store of verified fixtures shared by machines, named by content digest: a"
        " folder, file://, http(s):// (read-only), s3:// or gs://. A missing fixture is"
        " fetched from it before it is generated. Overrides the ptycho_fixture_store ini"
        " option. Write it with '=' (--ptycho-fixture-store=URL)",
    )
    group.addoption(
        "--ptycho-fixture-offline",
        action="store_true",
        default=False,
        help=f"generate nothing: a fixture that is missing or wrong must come from the store,"
        f" else its tests fail with one line (also: {OFFLINE_ENV}=1)",
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
        "source scan, relative to the rootdir: an NPZ, a CXI file, a ptychodus product (with"
        " ptycho_fixture_diffraction) or another HDF5 file (with ptycho_fixture_keys);"
        " recognised by content (default: the built-in synthetic scan)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_diffraction",
        "the patterns of a ptychodus product source, relative to the rootdir: a CXI file,"
        " ptychodus' diffraction.h5, or an NPZ (default: none)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_keys",
        "the datasets of an HDF5 source in a layout of its own, KEY=/path pairs separated by"
        " commas or lines, e.g. diffraction=/data, xcoords=/x, ycoords=/y, probeGuess=/probe,"
        " objectGuess=/object (default: none; CXI and product files need none)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_geometry",
        "the geometry of a source that holds none (an NPZ): energy_ev=E,distance_m=Z,pixel_m=P,"
        " the photon energy in eV, the detector distance and pixel in metres; recorded in the"
        " sidecar (default: none; CXI and product files hold their own, and the built-in"
        " source declares one)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_probe",
        "the probe of a CXI source that holds none, relative to the rootdir: an NPY of one"
        " complex (H, W) array, or an NPZ with probeGuess (default: estimated from the"
        " patterns, as the sidecar's transformations record)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_subset_size",
        f"positions in the fixture (default {DEFAULT_SUBSET})",
        default=str(DEFAULT_SUBSET),
    )
    parser.addini(
        "ptycho_fixture_subset_strategy",
        "stratified (positions spanning the scan's ranges, default), first, spread (one"
        " position per cell of a grid over the scan), or groups (groups of gridsize x"
        " gridsize neighbours)",
        default=DEFAULT_STRATEGY,
    )
    parser.addini(
        "ptycho_fixture_gridsize",
        "groups only: groups of G x G positions, a seed and its nearest neighbours"
        f" (default {DEFAULT_GRIDSIZE})",
        default="",
    )
    parser.addini(
        "ptycho_fixture_layout",
        "layout of the source diffraction, HWN (legacy) or NHW; needed only when H == W == N"
        " makes it ambiguous (default: decided from the number of coordinates)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_sets",
        "named fixture sets, one a line: NAME key=value ..., keys source, subset_size,"
        " strategy, gridsize, layout, path, diffraction, keys, geometry, probe; each its own"
        " NPZ and committed"
        " sidecar (default"
        f" path: NAME.npz in the folder of ptycho_fixture_path, else in {SETS_FOLDER.as_posix()});"
        " a key left out takes the main fixture's value. See the ptycho_sets fixture",
        type="linelist",
        default=[],
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
        "ptycho_fixture_store",
        "store of verified fixtures shared by machines: a folder (relative to the rootdir),"
        " file://, http(s):// (read-only), s3:// or gs:// (pip install"
        " 'pytest-ptycho-fixture[remote]', [s3] or [gcs]); entries are named by the committed"
        " content_sha256 (default: none)",
        default="",
    )
    parser.addini(
        "ptycho_fixture_store_push",
        "push each fixture a run generates to ptycho_fixture_store (default false)",
        type="bool",
        default=False,
    )
    parser.addini(
        "ptycho_fixture_store_timeout",
        "seconds the store may take to connect or to send more bytes before the run gives"
        f" up on it (default {DEFAULT_STORE_TIMEOUT:g})",
        default=f"{DEFAULT_STORE_TIMEOUT:g}",
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


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # As early as a plugin can: pytest chose the rootdir from these same arguments.
    sources = [
        (list(early_config.invocation_params.args), "on the command line"),
        (shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), "in PYTEST_ADDOPTS"),
    ]
    for args, where in sources:
        refusal = detached_value(args, where)
        if refusal is not None:
            raise pytest.UsageError(refusal)


def _text(text: str, option: str) -> str:
    return text


def _setting(config: pytest.Config, name: str, parse: Callable[[str, str], _T]) -> _T:
    """The command-line value of ``name`` if given, else its ini value, parsed by ``parse``."""
    value: _T | None = config.getoption(name, default=None)
    if value is not None:
        return value
    try:
        return parse(config.getini(name), _ini(config, name))
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None


def _ini(config: pytest.Config, name: str) -> str:
    """The ini option ``name`` as an error names it: ``ini option NAME in pytest.ini``."""
    return f"ini option {name}{f' in {config.inipath.name}' if config.inipath else ''}"


def _path(config: pytest.Config, text: str) -> Path | None:
    return resolve_file(config.rootpath, text)


# -- configuration, header, summary -------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cuda: the test needs a CUDA device; skipped with the reason where there is none"
    )
    config.stash[STATE] = state = RunState.from_config(config)
    if state.worker is None:
        _check_explicit_requests(config, state)


def _check_explicit_requests(config: pytest.Config, state: RunState) -> None:
    """Refuse, at start-up, requests that cannot be honoured."""
    if state.device.startswith("cuda"):
        try:
            devices.check_available(state.device)
        except devices.DeviceUnavailable as exc:
            origin = "--ptycho-device" if config.getoption("ptycho_device") else "ptycho_device"
            raise pytest.UsageError(f"{origin}: {exc}") from None
    if state.offline and state.regenerate:
        raise pytest.UsageError(
            "--regen-fixture generates, and offline mode (--ptycho-fixture-offline or"
            f" {OFFLINE_ENV}) forbids generating; drop one of them"
        )
    if state.store_push and state.store and store_scheme(state.store) in ("http", "https"):
        raise pytest.UsageError(
            f"ptycho_fixture_store_push is true, but the store {state.store} is read-only over"
            " HTTP; push to the folder or bucket it serves, or set ptycho_fixture_store_push"
            " = false"
        )
    if DEFAULT_SET in state.regenerate and state.spec.shipped:
        others = [name for name in state.sets if name != DEFAULT_SET]
        only = f"; or regenerate only the sets: --regen-fixture={','.join(others)}"
        raise pytest.UsageError(
            f"--regen-fixture would rewrite the sidecar shipped inside pytest-ptycho-fixture"
            f" ({state.spec.sidecar}); set the ptycho_fixture_path ini option (its sidecar is"
            " the same path with .json) or ptycho_fixture_metadata to keep a sidecar in your"
            f" project{only if others else ''}"
        )


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    spec, root = state.spec, state.root
    kind = " (shipped)" if spec.shipped else "" if spec.committed else " (made with the fixture)"
    main = (
        f"ptycho-fixture: {show(root, spec.path)}, sidecar {show(root, spec.sidecar)}"
        f"{kind}, source {source_label(root, spec)}"
        f" ({spec.subset_size} positions, {spec.strategy}{_groups(spec)}),"
        f" device {devices.header_device(state.device)}"
    )
    lines = [main]
    declared = [
        f"{name} {show(root, each.path)} ({source_label(root, each)}, {each.subset_size}"
        f" positions, {each.strategy}{_groups(each)})"
        for name, each in state.sets.items()
        if name != DEFAULT_SET
    ]
    if declared:
        lines.append(f"ptycho-fixture: sets {', '.join(declared)}")
    if state.store is not None or state.offline:
        store = "none" if state.store is None else store_label(root, state.store)
        push = ", push" if state.store_push else ""
        offline = ", offline: nothing is generated" if state.offline else ""
        lines.append(f"ptycho-fixture: store {store}{push}{offline}")
    return lines


def _groups(spec: FixtureSpec) -> str:
    return "" if spec.gridsize is None else f" of {spec.gridsize}x{spec.gridsize}"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Before pytest-xdist starts workers (its hook runs last), so they only verify.
    state = session.config.stash[STATE]
    if state.regenerate and state.worker is None:
        from .messages import FixtureError

        try:
            for name in state.regenerate:
                state.cache.regenerate(state.sets[name])
        except FixtureError as exc:
            raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[RUN_ID] = node.config.stash[STATE].run_id


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    stats = getattr(node, "workeroutput", {}).get(WORKER_STATS)
    if stats is not None:
        node.config.stash[STATE].stats.merge(stats)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[WORKER_STATS] = session.config.stash[STATE].stats.to_dict()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash[STATE]
    for line in state.stats.summary(set_order=list(state.sets)):
        terminalreporter.write_line(line)


# -- devices and the shared-tensor guard ------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    state = metafunc.config.stash[STATE]
    if "ptycho_device" in metafunc.fixturenames and state.device == "all":
        chosen = state.devices
        metafunc.parametrize("ptycho_device", chosen, ids=chosen, indirect=True, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if marked and devices.cuda_count() == 0:
        skip = pytest.mark.skip(reason=f"needs a CUDA device: {devices.cuda_unavailable_reason()}")
        for item in marked:
            item.add_marker(skip)


def _guard(item: pytest.Item) -> None:
    made = item.config.stash[STATE].shared_if_made
    if not made:
        return
    from .messages import FixtureError

    messages: list[str] = []
    for shared in made:  # each, so that every modified tensor is restored
        try:
            message = shared.check(item.nodeid)
        except FixtureError as exc:
            message = str(exc)
        if message:
            messages.append(message)
    if messages:
        pytest.fail("\n".join(messages), pytrace=False)


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


@pytest.fixture(scope="session")
def ptycho_fixture_path(request: pytest.FixtureRequest) -> Path:
    """Path to the fixture NPZ, verified against its sidecar (generated on first use).

    Configure it with the ``ptycho_fixture_*`` ini options; see ``pytest --help``.
    """
    return request.config.stash[STATE].verified().spec.path


@pytest.fixture(scope="session")
def ptycho_metadata(request: pytest.FixtureRequest) -> Mapping[str, Any]:
    """The fixture's sidecar (digests, source, subset, transformations), read-only."""
    return request.config.stash[STATE].verified().metadata


@pytest.fixture(scope="session")
def ptycho_arrays(request: pytest.FixtureRequest) -> Mapping[str, NDArray[Any]]:
    """The fixture's arrays by key (``diffraction``, ``probeGuess``, ...), read-only numpy."""
    return request.config.stash[STATE].verified().arrays


@pytest.fixture(scope="session")
def ptycho_device(request: pytest.FixtureRequest) -> torch.device:
    """The selected ``torch.device`` (``--ptycho-device``; ``all`` parametrizes over each)."""
    state = request.config.stash[STATE]
    return state.torch_device(getattr(request, "param", None) or state.devices[0])


@pytest.fixture(scope="session")
def ptycho_tensors(request: pytest.FixtureRequest, ptycho_device: torch.device) -> PtychoTensors:
    """The fixture as tensors on ``ptycho_device``, shared by every test: do not modify.

    ``diffraction`` (N, H, W) float32, ``probe`` and ``object`` complex64, ``coords``
    (N, 2) float64 ``(x, y)``, and ``xcoords_start``, ``ycoords_start``, ``scan_index``
    (``None`` when absent). A test that modifies one in place fails, and the tensors are
    restored for the next tests; use ``ptycho_batch`` for a copy you may modify.
    """
    state = request.config.stash[STATE]
    return state.shared.get(state.verified().arrays, str(ptycho_device))


@pytest.fixture
def ptycho_batch(ptycho_tensors: PtychoTensors) -> PtychoTensors:
    """A private copy of ``ptycho_tensors`` for one test, which it may modify freely."""
    return ptycho_tensors.clone()


@pytest.fixture(scope="session")
def ptycho_sets(request: pytest.FixtureRequest) -> Mapping[str, FixtureSet]:
    """The fixture sets of ``ptycho_fixture_sets`` by name (``default``: the main fixture).

    A read-only mapping; ``ptycho_sets[NAME]`` verifies (or generates) that set on first
    access and has ``.path``, ``.metadata``, ``.arrays`` and ``.tensors`` (on the first
    selected device, shared by every test and guarded as ``ptycho_tensors`` is).
    """
    from .sets import fixture_sets

    state = request.config.stash[STATE]
    return fixture_sets(state.sets, state.open_set)


@final
@dataclass(frozen=True)
class Factory:
    """``factory(subset_size=, strategy=, source=, layout=, gridsize=, diffraction=, keys=,
    geometry=, probe=) -> Path``: a variant.

    Omitted arguments take the configured values; ``source`` is resolved against the
    rootdir, and ``"builtin"`` is the built-in scan. Each argument is parsed as its ini
    option is, and a refused one fails the test with one line.
    """

    state: RunState

    def __call__(
        self,
        subset_size: int | None = None,
        strategy: str | None = None,
        source: str | os.PathLike[str] | None = None,
        layout: str | None = None,
        gridsize: int | None = None,
        diffraction: str | os.PathLike[str] | None = None,
        keys: str | None = None,
        geometry: str | None = None,
        probe: str | os.PathLike[str] | None = None,
    ) -> Path:
        state, defaults = self.state, self.state.spec
        # A diffraction file, keys, a geometry and a probe belong to a source: a new one
        # does not take them.
        own = source is not None
        try:
            size = (
                defaults.subset_size
                if subset_size is None
                else parse_subset_size(subset_size, "subset_size")
            )
            chosen = defaults.strategy if strategy is None else parse_strategy(strategy, "strategy")
            spec = cached_spec(
                state.folder,
                defaults.source if source is None else resolve_source(state.root, source),
                size,
                chosen,
                defaults.layout if layout is None else parse_layout(layout, "layout"),
                grouping(chosen, size, gridsize, "gridsize", defaults.gridsize),
                (None if own else defaults.diffraction)
                if diffraction is None
                else resolve_file(state.root, os.fspath(diffraction)),
                (None if own else defaults.keys) if keys is None else parse_keys(keys, "keys"),
                (None if own else defaults.geometry)
                if geometry is None
                else parse_geometry(geometry, "geometry"),
                (None if own else defaults.probe)
                if probe is None
                else resolve_file(state.root, os.fspath(probe)),
            )
        except OptionError as exc:
            refused = exc
        else:
            return state.verified(spec).spec.path
        pytest.fail(f"ptycho_fixture_factory: {refused}", pytrace=False)


@pytest.fixture(scope="session")
def ptycho_fixture_factory(request: pytest.FixtureRequest) -> Factory:
    """``factory(subset_size=, strategy=, source=, layout=, gridsize=, diffraction=, keys=,
    geometry=, probe=) -> Path``: variants.

    Omitted arguments take the configured values; ``source="builtin"`` is the built-in
    scan. Each variant is generated once into the cache folder, named by a hash of its
    parameters, and verified against the sidecar generated with it.
    """
    return Factory(request.config.stash[STATE])
