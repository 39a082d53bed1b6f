"""The fixture cache: lock, verify against the sidecar, heal or regenerate, count the work.

Protocol, per fixture file and at most once per process: take ``<fixture>.lock`` (see
:mod:`.locking`; ``ptycho-fixture generate`` takes it too); remove temporary files left by
a killed writer; if the NPZ's ``content_sha256`` matches the sidecar, use it; otherwise
regenerate it atomically from the source and check again. Every process re-checks after
acquiring the lock, so across pytest-xdist workers and concurrent runs the fixture is
generated once and everyone else only verifies. In a folder where the lock file cannot be
created (read-only), nobody can write either: the fixture is verified without the lock.

A *committed* sidecar (in the project, or shipped in the package) is the reference and is
never written except by :meth:`FixtureCache.regenerate` (``--regen-fixture``). A sidecar
kept in the cache folder is written with its fixture and detects corruption only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import types
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import pytest

from . import locking
from .contract import ContractError
from .spec import FixtureSpec, cached_spec, resolve_source, show, source_label
from .stats import Stats

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .npzread import LoadedNpz

#: Key written into cache-folder sidecars: the run that last regenerated them.
CACHE_RUN = "cache_run"
MISSING = "does not exist"


class FixtureError(Exception):
    """The fixture cannot be provided; ``str()`` is the one line shown for each test."""


class _NotWritable(FixtureError):
    """The lock file cannot be created because its folder is not writable."""

    def __init__(self, fixture: str, detail: str) -> None:
        super().__init__(f"ptycho-fixture: {fixture} cannot be generated or healed: {detail}")
        self.detail = detail


def read_only(value: Any) -> Any:
    """``value`` with every dict made a ``MappingProxyType`` and every list a tuple."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({key: read_only(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(read_only(item) for item in value)
    return value


@final
@dataclass(frozen=True)
class Verified:
    """A fixture whose content matches its sidecar, with its arrays loaded read-only."""

    spec: FixtureSpec
    metadata: Mapping[str, Any]
    arrays: Mapping[str, NDArray[Any]]


@final
@dataclass
class FixtureCache:
    """Provide verified fixtures to one pytest process, generating them when needed.

    ``run_id`` is shared by the processes of one run (the pytest-xdist controller hands it
    to its workers); ``regen`` is ``--regen-fixture``; ``root`` is what paths are shown
    relative to; ``folder`` is the cache folder, where a run notes a fixture that
    regenerating did not fix, so that its other processes report it without regenerating.
    ``verify_source`` makes a generation read all of a source NPZ (see ``NpzSource``).
    """

    lock_timeout: float = 600.0
    worker: str = "main"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    regen: bool = False
    verify_source: bool = False
    root: Path | None = None
    folder: Path | None = None
    stats: Stats = field(default_factory=Stats)
    verified: dict[Path, Verified] = field(default_factory=dict)
    failed: dict[Path, FixtureError] = field(default_factory=dict)

    def show(self, path: Path) -> str:
        """``path`` relative to the rootdir when it is inside it."""
        return show(self.root, path)

    def get(self, spec: FixtureSpec) -> Verified:
        """The verified fixture for ``spec``: checked, healed or generated once per process."""
        if spec.path in self.verified:
            return self.verified[spec.path]
        if spec.path in self.failed:
            raise self.failed[spec.path]
        try:
            try:
                with self._locked(spec):
                    result = self._verify_or_make(spec)
            except _NotWritable as exc:
                result = self._verify_unlocked(spec, exc.detail)
        except FixtureError as exc:
            self.failed[spec.path] = exc
            self.stats.errors += 1
            raise
        self.verified[spec.path] = result
        self.stats.verifications += 1
        return result

    def get_or_fail(self, spec: FixtureSpec) -> Verified:
        """:meth:`get` for fixtures: an error fails the test with one line, no traceback."""
        try:
            return self.get(spec)
        except FixtureError as exc:
            message = str(exc)
        pytest.fail(message, pytrace=False)

    def regenerate(self, spec: FixtureSpec) -> Verified:
        """Regenerate the NPZ and rewrite its sidecar (``--regen-fixture``)."""
        try:
            with self._locked(spec):
                self._check_source(spec, None)
                metadata = self._generate(spec, write_sidecar=True)
                result = self._accept(spec, metadata, self._read_back(spec, metadata))
        except FixtureError as exc:
            self.failed[spec.path] = exc
            self.stats.errors += 1
            raise
        if spec.committed:
            self.stats.rewritten.append(self.show(spec.sidecar))
        self.verified[spec.path] = result
        self.stats.verifications += 1
        return result

    def reload(self, spec: FixtureSpec) -> Mapping[str, NDArray[Any]]:
        """Read the verified fixture again, for restoring modified session tensors."""
        expected = self.verified[spec.path].metadata["content_sha256"]
        try:
            with self._locked(spec):
                loaded, problem = self._load(spec)
        except _NotWritable:
            loaded, problem = self._load(spec)
        if loaded is not None and loaded.content_sha256 == expected:
            return _frozen_arrays(loaded.arrays)
        message = (
            f"ptycho-fixture: cannot restore the session tensors: {self.show(spec.path)}"
            f" {problem or 'changed during the run'}"
        )
        raise FixtureError(message)

    # -- the protocol, run while holding the lock -------------------------------------

    @contextlib.contextmanager
    def _locked(self, spec: FixtureSpec) -> Iterator[None]:
        try:
            spec.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            message = (
                f"ptycho-fixture: cannot create the folder {spec.path.parent}:"
                f" {exc.strerror or exc}"
            )
            raise FixtureError(message) from None
        # Also the sidecar beside the fixture, which ptycho-fixture generate writes even
        # when the plugin checks against another one.
        sweep = dict.fromkeys([spec.path, spec.path.with_suffix(".json")])
        if not spec.shipped:
            sweep[spec.sidecar] = None
        try:
            with locking.holding(spec.path, self.lock_timeout, sweep):
                yield
        except locking.LockUnavailable as exc:
            raise self._lock_error(spec, exc) from None

    def _lock_error(self, spec: FixtureSpec, exc: locking.LockUnavailable) -> FixtureError:
        fixture = self.show(spec.path)
        if exc.waited is not None:
            return FixtureError(
                f"ptycho-fixture: waited {exc.waited:g} s for the lock {exc.path}, which"
                f" another pytest process holds while it generates or verifies {fixture};"
                " let it finish, or raise ptycho_fixture_lock_timeout (a killed holder"
                " releases the lock by itself)"
            )
        if exc.errno in locking.NOT_WRITABLE and not os.path.lexists(exc.path):
            folder = self.show(spec.path.parent)
            return _NotWritable(
                fixture,
                f"the folder {folder} is not writable (its lock file {Path(exc.path).name}"
                f" cannot be created: {os.strerror(exc.errno)}); make {folder} writable, or"
                " point ptycho_fixture_path (or -o cache_dir=...) at a writable place",
            )
        return FixtureError(f"ptycho-fixture: cannot take the lock {exc}")

    def _verify_unlocked(self, spec: FixtureSpec, why: str) -> Verified:
        """Verify a fixture in a folder nobody can write to, so no lock is needed."""
        expected = self._expected(spec)
        loaded, problem = self._load(spec)
        if expected is None:
            problem = f"has no usable sidecar {self.show(spec.sidecar)}"
        elif loaded is not None and loaded.content_sha256 == expected["content_sha256"]:
            return self._accept(spec, expected, loaded)
        elif loaded is not None:
            problem = self._stale_problem(expected, loaded)
        message = (
            f"ptycho-fixture: {self.show(spec.path)} {problem}, and it cannot be generated"
            f" or healed: {why}"
        )
        raise FixtureError(message)

    def source_label(self, spec: FixtureSpec) -> str:
        return source_label(self.root, spec)

    def _verify_or_make(self, spec: FixtureSpec) -> Verified:
        expected = self._expected(spec)
        problem: str | None = None
        if expected is not None and not self._regen_due(spec, expected):
            self._raise_if_known_stale(spec)
            loaded, problem = self._load(spec)
            if loaded is not None and loaded.content_sha256 == expected["content_sha256"]:
                return self._accept(spec, expected, loaded)
            if loaded is not None:
                problem = self._stale_problem(expected, loaded)
        self._check_source(spec, problem)
        generated = self._generate(spec, write_sidecar=not spec.committed)
        reference = expected if spec.committed and expected is not None else generated
        loaded = self._read_back(spec, generated)
        if loaded.content_sha256 != reference["content_sha256"]:
            message = self._stale_message(spec, reference, loaded)
            self._note_stale(spec, message)
            raise FixtureError(message)
        if problem is not None and problem != MISSING:
            self.stats.healed.append(
                f"healed {self.show(spec.path)}: it {problem}; regenerated from"
                f" {self.source_label(spec)}, it matches {self.show(spec.sidecar)}"
            )
        return self._accept(spec, reference, loaded)

    @staticmethod
    def _stale_problem(expected: Mapping[str, Any], loaded: LoadedNpz) -> str:
        from .sidecar import differing_arrays

        differ = ", ".join(differing_arrays(expected, loaded.array_sha256, loaded.arrays))
        return (
            f"did not match the sidecar (content_sha256 expected"
            f" {str(expected['content_sha256'])[:12]}, got {loaded.content_sha256[:12]};"
            f" arrays that differ: {differ or 'none'})"
        )

    def _expected(self, spec: FixtureSpec) -> dict[str, Any] | None:
        """The sidecar, or ``None`` for a cache-folder one that is missing or broken."""
        from .sidecar import read_sidecar

        try:
            return read_sidecar(spec.sidecar)
        except ContractError as exc:
            if not spec.committed:
                return None
            sidecar = self.show(spec.sidecar)
            if not spec.sidecar.exists():
                message = (
                    f"ptycho-fixture: the sidecar {sidecar} does not exist, so"
                    f" {self.show(spec.path)} cannot be verified; create it with"
                    f" pytest --regen-fixture, then commit {sidecar}"
                )
            else:
                message = (
                    f"ptycho-fixture: the sidecar {sidecar} {exc.message}; restore it (e.g. git"
                    f" checkout {sidecar}) or run pytest --regen-fixture and commit {sidecar};"
                    " it is never overwritten without --regen-fixture"
                )
            raise FixtureError(message) from None

    def _regen_due(self, spec: FixtureSpec, expected: Mapping[str, Any]) -> bool:
        # Cache-folder sidecars are regenerated by the first process of a --regen-fixture
        # run that needs them; committed ones by the controller, before workers start.
        return self.regen and not spec.committed and expected.get(CACHE_RUN) != self.run_id

    def _stale_record(self, spec: FixtureSpec) -> Path | None:
        if self.folder is None:
            return None
        name = hashlib.sha256(str(spec.path).encode()).hexdigest()[:12]
        return self.folder / f"stale-{name}.json"

    def _note_stale(self, spec: FixtureSpec, message: str) -> None:
        from .atomic import write_bytes

        record = self._stale_record(spec)
        if record is not None:
            with contextlib.suppress(OSError):
                record.parent.mkdir(parents=True, exist_ok=True)
                write_bytes(record, json.dumps({"run": self.run_id, "message": message}).encode())

    def _raise_if_known_stale(self, spec: FixtureSpec) -> None:
        record = self._stale_record(spec)
        try:
            data = json.loads(record.read_text(encoding="utf-8")) if record else None
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("run") == self.run_id:
            raise FixtureError(str(data.get("message")))

    def _load(self, spec: FixtureSpec) -> tuple[LoadedNpz | None, str | None]:
        from .npzread import load_npz

        if not spec.path.exists():
            return None, MISSING
        try:
            return load_npz(spec.path), None
        except ContractError as exc:
            return None, f"was damaged ({exc.message})"
        except OSError as exc:
            return None, f"could not be read ({exc.strerror or exc})"

    def _check_source(self, spec: FixtureSpec, problem: str | None) -> None:
        if spec.source is None or spec.source.is_file():
            return
        source, fixture = self.show(spec.source), self.show(spec.path)
        absent = (
            "is a directory but a source NPZ file is required"
            if spec.source.is_dir()
            else "does not exist"
        )
        where = (
            f"Put the source dataset at {source} (or point ptycho_fixture_source /"
            " --ptycho-fixture-source at it)"
        )
        if problem == MISSING:
            message = (
                f"ptycho-fixture: the fixture {fixture} does not exist and cannot be"
                f" generated: its source {source} {absent}. {where}, or provide"
                f" {fixture} itself"
            )
        elif problem is not None:
            message = (
                f"ptycho-fixture: the fixture {fixture} {problem}, and it cannot be"
                f" regenerated: its source {source} {absent}. {where}, or restore"
                f" {fixture} (e.g. git checkout {fixture})"
            )
        else:
            message = (
                f"ptycho-fixture: cannot regenerate {fixture}: its source {source}"
                f" {absent}. {where}"
            )
        raise FixtureError(message)

    def _generate(self, spec: FixtureSpec, *, write_sidecar: bool) -> dict[str, Any]:
        from .generate import NpzSource, SyntheticSource, build_fixture, write_fixture
        from .sidecar import write_sidecar as write_json_sidecar

        started = time.perf_counter()
        try:
            # A relative label keeps the committed sidecar free of this machine's paths.
            source = (
                SyntheticSource()
                if spec.source is None
                else NpzSource(
                    spec.source,
                    spec.layout,
                    label=self.show(spec.source),
                    verify=self.verify_source,
                )
            )
            fixture = build_fixture(source, spec.subset_size, strategy=spec.strategy)
            if spec.committed:
                spec.sidecar.parent.mkdir(parents=True, exist_ok=True)
                metadata = write_fixture(
                    fixture, spec.path, spec.sidecar, write_metadata=write_sidecar
                )
            else:
                metadata = write_fixture(fixture, spec.path, write_metadata=False)
                metadata[CACHE_RUN] = self.run_id
                write_json_sidecar(spec.sidecar, metadata)
        except ContractError as exc:
            label = self.source_label(spec)
            # The source is named once, as the user configured it.
            about_source = exc.path in (label, str(spec.source))
            message = (
                f"ptycho-fixture: cannot generate {self.show(spec.path)} from {label}:"
                f" {exc.message if about_source else exc}"
            )
            raise FixtureError(message) from None
        except OSError as exc:
            shown = self.show(spec.path)
            where = self.show(Path(exc.filename)) if exc.filename else shown
            reason = exc.strerror or str(exc)
            message = (
                f"ptycho-fixture: cannot generate {shown}:"
                f" {reason if where == shown else f'{where}: {reason}'};"
                " nothing was written"
            )
            raise FixtureError(message) from None
        self.stats.generations.append((self.worker, time.perf_counter() - started))
        return metadata

    def _read_back(self, spec: FixtureSpec, generated: Mapping[str, Any]) -> LoadedNpz:
        """Read what was just written and check it holds what was generated."""
        loaded, problem = self._load(spec)
        if loaded is None or loaded.content_sha256 != generated["content_sha256"]:
            problem = problem or "differs from what was generated"
            message = (
                f"ptycho-fixture: {self.show(spec.path)} {problem} right after writing it;"
                " is another program writing there?"
            )
            raise FixtureError(message)
        return loaded

    def _stale_message(
        self, spec: FixtureSpec, expected: Mapping[str, Any], loaded: LoadedNpz
    ) -> str:
        from .sidecar import differing_arrays

        differ = differing_arrays(expected, loaded.array_sha256)
        sidecar = self.show(spec.sidecar)
        return (
            f"ptycho-fixture: the fixture generated from {self.source_label(spec)} does not match"
            f" the committed sidecar {sidecar}: arrays that differ:"
            f" {', '.join(differ) or 'none'}; content_sha256 expected"
            f" {expected['content_sha256']}, got {loaded.content_sha256}. The generator or"
            f" the source changed; if that is intended, run pytest --regen-fixture and"
            f" commit {sidecar}"
        )

    def _accept(
        self, spec: FixtureSpec, metadata: Mapping[str, Any], loaded: LoadedNpz
    ) -> Verified:
        from .contract import validate_fixture

        try:
            validate_fixture(self.show(spec.path), loaded.arrays)
        except ContractError as exc:
            message = (
                f"ptycho-fixture: {exc}; the fixture matches {self.show(spec.sidecar)} but"
                " breaks the data contract: fix the source, then run pytest --regen-fixture"
            )
            raise FixtureError(message) from None
        record = self._stale_record(spec)
        if record is not None:
            with contextlib.suppress(OSError):
                record.unlink(missing_ok=True)
        return Verified(spec, read_only(metadata), _frozen_arrays(loaded.arrays))


def _frozen_arrays(arrays: Mapping[str, NDArray[Any]]) -> Mapping[str, NDArray[Any]]:
    return types.MappingProxyType({key: _frozen(array) for key, array in arrays.items()})


def _frozen(array: NDArray[Any]) -> NDArray[Any]:
    """A view of ``array`` that numpy will not let anyone make writable again."""
    import numpy as np

    if array.size == 0:
        array.flags.writeable = False
        return array
    fortran = array.flags.f_contiguous and not array.flags.c_contiguous
    flat = array.reshape(-1, order="F" if fortran else "C")
    view = np.frombuffer(flat.view(np.uint8).data.toreadonly(), dtype=array.dtype)
    frozen: NDArray[Any] = view.reshape(array.shape, order="F" if fortran else "C")
    return frozen


@final
@dataclass(frozen=True)
class Factory:
    """``factory(subset_size=..., strategy=..., source=...) -> Path`` to a verified variant.

    Omitted arguments take the configured values; ``source`` is resolved against the
    rootdir, and ``"builtin"`` is the built-in scan.
    """

    cache: FixtureCache
    folder: Path
    defaults: FixtureSpec
    root: Path

    def __call__(
        self,
        subset_size: int | None = None,
        strategy: str | None = None,
        source: str | os.PathLike[str] | None = None,
    ) -> Path:
        spec = cached_spec(
            self.folder,
            self.defaults.source if source is None else resolve_source(self.root, source),
            self.defaults.subset_size if subset_size is None else subset_size,
            strategy or self.defaults.strategy,
        )
        return self.cache.get_or_fail(spec).spec.path
