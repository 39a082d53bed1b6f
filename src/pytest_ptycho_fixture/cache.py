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

With a store (:mod:`.store`), a committed fixture that is missing or wrong is fetched
first, under the same lock: the entry named by the sidecar's ``content_sha256`` is
downloaded beside the fixture and takes its name only if its arrays have that digest.
Only when the store has no such copy is the fixture generated, and then, if asked, pushed.
In offline mode nothing is generated: what the store cannot provide is an error.
"""

from __future__ import annotations

import contextlib
import time
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

from . import locking, messages
from .contract import ContractError
from .messages import FixtureError
from .spec import FixtureSpec, show, source_label, store_label
from .stats import Stats

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .npz.reader import LoadedNpz
    from .runrecord import StaleRecord
    from .store import Store, StoreFault

#: Key written into cache-folder sidecars: the run that last regenerated them.
CACHE_RUN = "cache_run"


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
    """Provide verified fixtures to one process, generating them when needed.

    ``run_id`` is shared by the processes of one run (the pytest-xdist controller hands it
    to its workers); ``regen`` is ``--regen-fixture``; ``root`` is what paths are shown
    relative to; ``record`` is where a run notes a fixture that regenerating did not fix,
    so that its other processes report it without regenerating (see :mod:`.runrecord`).
    ``verify_source`` makes a generation read all of a source NPZ (see ``NpzSource``).
    ``store`` is the URL or folder of a store (see :mod:`.store`), each of whose requests
    waits at most ``store_timeout`` seconds; ``store_push`` pushes what was generated to it;
    ``offline`` forbids generating. Every error is a :class:`~.messages.FixtureError`.
    """

    lock_timeout: float = locking.DEFAULT_TIMEOUT
    worker: str = "main"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    regen: bool = False
    verify_source: bool = False
    root: Path | None = None
    record: StaleRecord | None = None
    store: str | None = None
    store_timeout: float = 30.0
    store_push: bool = False
    offline: bool = False
    stats: Stats = field(default_factory=Stats)
    verified: dict[Path, Verified] = field(default_factory=dict)
    failed: dict[Path, FixtureError] = field(default_factory=dict)
    _store: Store | None = None

    def show(self, path: Path) -> str:
        """``path`` relative to the rootdir when it is inside it."""
        return show(self.root, path)

    def source_label(self, spec: FixtureSpec) -> str:
        return source_label(self.root, spec)

    # -- the three entry points -------------------------------------------------------

    def get(self, spec: FixtureSpec) -> Verified:
        """The verified fixture for ``spec``: checked, healed or generated once per process."""
        if spec.path in self.verified:
            return self.verified[spec.path]
        if spec.path in self.failed:
            raise self.failed[spec.path]
        return self._settle(spec, lambda: self._provide(spec))

    def regenerate(self, spec: FixtureSpec) -> Verified:
        """Regenerate the NPZ and rewrite its sidecar (``--regen-fixture``)."""

        def work() -> Verified:
            with self._locked(spec):
                self._check_source(spec, None)
                metadata, loaded = self._generate(spec, write_sidecar=True)
                verified = self._accept(spec, metadata, loaded)
                if spec.committed:
                    self._push(spec, str(metadata["content_sha256"]))
                return verified

        result = self._settle(spec, work)
        if spec.committed:
            self.stats.rewritten.append(self.show(spec.sidecar))
        return result

    def reload(self, spec: FixtureSpec) -> Mapping[str, NDArray[Any]]:
        """Read the verified fixture again, for restoring modified session tensors."""
        expected = self.verified[spec.path].metadata["content_sha256"]
        try:
            with self._locked(spec):
                loaded, problem = self._load(spec)
        except messages.NotWritable:
            loaded, problem = self._load(spec)
        if loaded is not None and loaded.content_sha256 == expected:
            return _frozen_arrays(loaded.arrays)
        raise messages.RestoreFailed(self.show(spec.path), problem)

    def _settle(self, spec: FixtureSpec, work: Callable[[], Verified]) -> Verified:
        """Run ``work`` and keep its outcome: a fixture is settled once per process."""
        try:
            result = work()
        except FixtureError as exc:
            self.failed[spec.path] = exc
            self.stats.errors += 1
            raise
        self.verified[spec.path] = result
        self.stats.verifications += 1
        return result

    # -- the protocol -------------------------------------------------------------------

    def _provide(self, spec: FixtureSpec) -> Verified:
        try:
            with self._locked(spec):
                return self._verify_or_make(spec)
        except messages.NotWritable as exc:
            # Nobody can write the folder, so nobody can change the fixture: no lock needed.
            return self._verify_unlocked(spec, exc)

    def _verify_or_make(self, spec: FixtureSpec) -> Verified:
        """Under the lock: use the fixture if it matches its sidecar, else generate it."""
        expected = self._expected(spec)
        problem: str | None = None
        if expected is not None and not self._regen_due(spec, expected):
            known = self.record.known(spec.path) if self.record else None
            if known is not None:
                raise known
            self._check_geometry(spec, expected)
            loaded, problem = self._load(spec)
            if loaded is not None and loaded.content_sha256 == expected["content_sha256"]:
                return self._accept(spec, expected, loaded)
            if loaded is not None:
                problem = _stale(expected, loaded)
        fetched, fault = self._from_store(spec, expected, problem)
        if fetched is not None:
            return fetched
        if self.offline:
            digest = str(expected["content_sha256"]) if spec.committed and expected else None
            raise messages.Offline(
                self.show(spec.path),
                problem or "must be generated",
                fault.store if fault is not None else self._store_label(),
                fault.about if fault is not None else None,
                digest,
            )
        self._check_source(spec, problem, fault)
        generated, loaded = self._generate(spec, write_sidecar=not spec.committed)
        reference = expected if spec.committed and expected is not None else generated
        if loaded.content_sha256 != reference["content_sha256"]:
            from .npz.sidecar import differing_arrays

            error = messages.GeneratedMismatch(
                self.source_label(spec),
                self.show(spec.sidecar),
                str(reference["content_sha256"]),
                loaded.content_sha256,
                tuple(differing_arrays(reference, loaded.array_sha256, loaded.arrays)),
            )
            if self.record is not None:
                self.record.note(spec.path, error)
            raise error
        if problem is not None and problem != messages.MISSING:
            self.stats.healed.append(
                messages.healed(
                    self.show(spec.path), problem, self.source_label(spec), self.show(spec.sidecar)
                )
            )
        if fault is not None:
            self.stats.store_notes.append(
                messages.generated_instead(
                    self.show(spec.path), str(fault), self.source_label(spec)
                )
            )
        verified = self._accept(spec, reference, loaded)
        if spec.committed:
            self._push(spec, str(reference["content_sha256"]))
        return verified

    def _from_store(
        self, spec: FixtureSpec, expected: Mapping[str, Any] | None, problem: str | None
    ) -> tuple[Verified | None, StoreFault | None]:
        """Under the lock: the fixture fetched from the store, or why the store has none.

        Only a committed sidecar names an entry; with no store, or none named, neither.
        """
        if not (spec.committed and expected is not None and self.store is not None):
            return None, None
        from .store import StoreFault

        try:
            label, fetched = self._fetch(spec, expected)
        except StoreFault as exc:
            return None, exc
        if problem is not None and problem != messages.MISSING:
            self.stats.healed.append(
                messages.healed(
                    self.show(spec.path), problem, label, self.show(spec.sidecar), fetched=True
                )
            )
        return self._accept(spec, expected, fetched), None

    def _check_geometry(self, spec: FixtureSpec, expected: Mapping[str, Any]) -> None:
        """Refuse a committed sidecar whose geometry is not the configured one: the NPZ
        would verify, and the tests be handed a geometry nobody asked for."""
        if spec.geometry is None or not spec.committed:
            return
        from .geometry import from_record

        entry = expected.get("geometry")
        recorded = None if not isinstance(entry, Mapping) else entry
        try:
            same = recorded is not None and from_record(recorded) == spec.geometry
        except (KeyError, TypeError, ValueError, IndexError):
            same = False
        if not same:
            g = spec.geometry
            raise messages.GeometryChanged(
                self.show(spec.path),
                self.show(spec.sidecar),
                "none" if recorded is None else _shown_geometry(recorded),
                f"energy_ev={g.energy_ev:g},distance_m={g.distance_m:g},pixel_m={g.pixel_m[0]:g}",
            )

    def _verify_unlocked(self, spec: FixtureSpec, why: messages.NotWritable) -> Verified:
        """Verify a fixture in a folder nobody can write to."""
        expected = self._expected(spec)
        loaded, problem = self._load(spec)
        if expected is None:
            problem = f"has no usable sidecar {self.show(spec.sidecar)}"
        elif loaded is not None and loaded.content_sha256 == expected["content_sha256"]:
            return self._accept(spec, expected, loaded)
        elif loaded is not None:
            problem = _stale(expected, loaded)
        raise messages.Unverifiable(self.show(spec.path), str(problem), why.fix)

    def _accept(
        self, spec: FixtureSpec, metadata: Mapping[str, Any], loaded: LoadedNpz
    ) -> Verified:
        from .contract import validate_fixture

        try:
            validate_fixture(self.show(spec.path), loaded.arrays)
        except ContractError as exc:
            raise messages.ContractBroken(str(exc), self.show(spec.sidecar)) from None
        if self.record is not None:
            self.record.clear(spec.path)
        return Verified(spec, read_only(metadata), _frozen_arrays(loaded.arrays))

    # -- its steps ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, spec: FixtureSpec) -> Iterator[None]:
        try:
            spec.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise messages.FolderUncreatable(
                str(spec.path.parent), exc.strerror or str(exc)
            ) from None
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
            return messages.LockTimeout(fixture, exc.path, exc.waited)
        if exc.folder_not_writable:
            assert exc.errno is not None
            folder = self.show(spec.path.parent)
            return messages.NotWritable(fixture, folder, Path(exc.path).name, exc.errno)
        return messages.LockFailed(exc.path, exc.reason)

    def _expected(self, spec: FixtureSpec) -> dict[str, Any] | None:
        """The sidecar, or ``None`` for a cache-folder one that is missing or broken."""
        from .npz.sidecar import read_sidecar

        try:
            return read_sidecar(spec.sidecar)
        except ContractError as exc:
            if not spec.committed:
                return None
            sidecar = self.show(spec.sidecar)
            if not spec.sidecar.exists():
                raise messages.SidecarMissing(sidecar, self.show(spec.path)) from None
            raise messages.SidecarBroken(sidecar, exc.message) from None

    def _regen_due(self, spec: FixtureSpec, expected: Mapping[str, Any]) -> bool:
        # Cache-folder sidecars are regenerated by the first process of a --regen-fixture
        # run that needs them; committed ones by the controller, before workers start.
        return self.regen and not spec.committed and expected.get(CACHE_RUN) != self.run_id

    def _load(self, spec: FixtureSpec) -> tuple[LoadedNpz | None, str | None]:
        return _load_file(spec.path)

    def _check_source(
        self, spec: FixtureSpec, problem: str | None, fault: StoreFault | None = None
    ) -> None:
        if spec.source is None or spec.source.is_file():
            return
        raise messages.SourceMissing(
            self.show(spec.path),
            self.show(spec.source),
            spec.source.is_dir(),
            problem,
            None if fault is None else str(fault),
        )

    def _store_label(self) -> str | None:
        return None if self.store is None else store_label(self.root, self.store)

    def _opened_store(self) -> Store:
        """The store, opened on first use (its module imports what its protocol needs)."""
        if self._store is None:
            from .store import open_store

            assert self.store is not None
            self._store = open_store(self.store, self.store_timeout, self._store_label())
        return self._store

    def _fetch(self, spec: FixtureSpec, expected: Mapping[str, Any]) -> tuple[str, LoadedNpz]:
        """Fetch the entry of the sidecar's digest to the fixture's path: the store's label
        and the fixture as checked. Raises a ``StoreFault`` when the store has no verified
        copy."""
        digest = str(expected["content_sha256"])
        started = time.perf_counter()
        store = self._opened_store()
        checked: list[LoadedNpz] = []

        def check(temp: Path) -> str | None:
            loaded, problem = _load_file(temp)
            if loaded is None:
                return problem
            if loaded.content_sha256 != digest:
                return f"has content_sha256 {loaded.content_sha256}"
            checked.append(loaded)
            return None

        try:
            store.fetch(digest, spec.path, check, _largest_file(expected))
        except OSError as exc:
            raise self._write_failed(spec, exc) from None
        self.stats.fetches.append((self.worker, store.label, time.perf_counter() - started))
        return store.label, checked[0]

    def _push(self, spec: FixtureSpec, digest: str) -> None:
        """Push a fixture just generated, if asked; a failure is noted, not raised."""
        if not self.store_push or self.store is None:
            return
        from .store import StoreFault, entry_name

        try:
            store = self._opened_store()
            if store.push(spec.path, digest):
                note = messages.pushed(self.show(spec.path), store.label, entry_name(digest))
                self.stats.store_notes.append(note)
        except StoreFault as exc:
            self.stats.store_notes.append(messages.push_failed(self.show(spec.path), str(exc)))

    def _generate(
        self, spec: FixtureSpec, *, write_sidecar: bool
    ) -> tuple[dict[str, Any], LoadedNpz]:
        """Generate the fixture from its source: its metadata, and the fixture as read back.

        The time recorded runs from the generator's imports to the verified read-back, as
        a fetch's runs from the store's imports to the verified download, so that the
        summary's two figures compare.
        """
        started = time.perf_counter()
        from .generate import build_fixture, write_fixture
        from .npz.sidecar import write_sidecar as write_json_sidecar
        from .sources.registry import open_source

        try:
            # A relative label keeps the committed sidecar free of this machine's paths.
            source = open_source(
                spec.source,
                spec.layout,
                diffraction=spec.diffraction,
                keys=None if spec.keys is None else dict(spec.keys),
                label=None if spec.source is None else self.show(spec.source),
                diffraction_label=None if spec.diffraction is None else self.show(spec.diffraction),
                verify=self.verify_source,
                geometry=spec.geometry,
                probe=spec.probe,
            )
            fixture = build_fixture(
                source, spec.subset_size, strategy=spec.strategy, gridsize=spec.gridsize
            )
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
            detail = exc.message if about_source else str(exc)
            if spec.diffraction is not None and exc.path == str(spec.diffraction):
                detail = f"{self.show(spec.diffraction)}: {exc.message}"
            raise messages.SourceRefused(self.show(spec.path), label, detail) from None
        except OSError as exc:
            raise self._write_failed(spec, exc) from None
        try:
            return metadata, self._read_back(spec, metadata)
        finally:
            self.stats.generations.append((self.worker, time.perf_counter() - started))

    def _write_failed(self, spec: FixtureSpec, exc: OSError) -> messages.WriteFailed:
        shown = self.show(spec.path)
        where = self.show(Path(exc.filename)) if exc.filename else shown
        return messages.WriteFailed(shown, where, exc.strerror or str(exc))

    def _read_back(self, spec: FixtureSpec, generated: Mapping[str, Any]) -> LoadedNpz:
        """Read what was just written and check it holds what was generated."""
        loaded, problem = self._load(spec)
        if loaded is None or loaded.content_sha256 != generated["content_sha256"]:
            raise messages.ReadBackFailed(
                self.show(spec.path), problem or "differs from what was generated"
            )
        return loaded


def _largest_file(expected: Mapping[str, Any]) -> int:
    """The most bytes an NPZ of the sidecar's arrays can take: each array stored, with
    room for its headers, so that a store cannot make a download any longer."""
    total = 1 << 20
    for entry in expected["arrays"].values():
        dtype, shape = str(entry.get("dtype", "")), entry.get("shape", [])
        bits = "".join(character for character in dtype if character.isdigit())
        size = int(bits) // 8 if bits else 1
        for length in shape:
            size *= int(length)
        total += size + (64 << 10)
    return total


def _load_file(path: Path) -> tuple[LoadedNpz | None, str | None]:
    """The NPZ at ``path``, or ``None`` and what is wrong with it."""
    from .npz.reader import load_npz

    if not path.exists():
        return None, messages.MISSING
    try:
        return load_npz(path), None
    except ContractError as exc:
        return None, messages.damaged(exc.message)
    except OSError as exc:
        return None, messages.unreadable(exc.strerror or str(exc))


def _stale(expected: Mapping[str, Any], loaded: LoadedNpz) -> str:
    from .npz.sidecar import differing_arrays

    differ = differing_arrays(expected, loaded.array_sha256, loaded.arrays)
    return messages.stale(str(expected["content_sha256"]), loaded.content_sha256, differ)


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


def _shown_geometry(entry: Mapping[str, Any]) -> str:
    """A sidecar's geometry as ``--geometry`` text (``?`` for what it lacks)."""

    def value(key: str, first: bool = False) -> str:
        item = entry.get(key)
        if first and isinstance(item, list) and item:
            item = item[0]
        return f"{item:g}" if isinstance(item, (int, float)) else "?"

    return (
        f"energy_ev={value('photon_energy_eV')},distance_m={value('detector_distance_m')},"
        f"pixel_m={value('detector_pixel_size_m', first=True)}"
    )
