"""Every message of the fixture cache, written once, as typed errors that carry their data.

The cache (:mod:`.cache`) raises these; the plugin turns them into test failures and the
command line into its one-line errors. Each is a dataclass whose fields are the facts
(paths as the user sees them, digests, the reason), as filelock's exceptions carry
theirs; ``str()`` is the one line shown, beginning ``ptycho-fixture:``. They pickle, so
that pytest-xdist can carry them. The phrases that several messages share (a digest
mismatch, a damaged file) are functions here too, so that each is worded once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import final

#: What a fixture that is not there "does".
MISSING = "does not exist"
#: Where the source is configured, for messages that ask for it.
SOURCE_OPTIONS = "ptycho_fixture_source / --ptycho-fixture-source=PATH"
#: Where offline mode and the store are switched on, for messages that name them.
OFFLINE_SWITCHES = "--ptycho-fixture-offline / PTYCHO_FIXTURE_OFFLINE"
STORE_OPTIONS = "ptycho_fixture_store / --ptycho-fixture-store"


def digest_mismatch(expected: str, got: str, differ: Sequence[str]) -> str:
    """The one wording of a content digest that is not the recorded one."""
    return (
        f"content_sha256 expected {expected}, got {got};"
        f" arrays that differ: {', '.join(differ) or 'none'}"
    )


def stale(expected: str, got: str, differ: Sequence[str]) -> str:
    """What a fixture that does not match its sidecar "did"."""
    return f"did not match the sidecar ({digest_mismatch(expected, got, differ)})"


def damaged(detail: str) -> str:
    return f"was damaged ({detail})"


def unreadable(reason: str) -> str:
    return f"could not be read ({reason})"


def healed(fixture: str, problem: str, source: str, sidecar: str, *, fetched: bool = False) -> str:
    """The summary line of a cached file that was regenerated (or fetched) and now matches."""
    how = "fetched from" if fetched else "regenerated from"
    return f"healed {fixture}: it {problem}; {how} {source}, it matches {sidecar}"


def generated_instead(fixture: str, fault: str, source: str) -> str:
    """The summary line of a fixture the store could not provide, generated instead."""
    return f"{fixture} was generated from {source}: the store had no verified copy ({fault})"


def pushed(fixture: str, store: str, entry: str) -> str:
    return f"pushed {fixture} to {store} as {entry}"


def push_failed(fixture: str, fault: str) -> str:
    """The summary line of a push that failed: the fixture is fine, the store unchanged."""
    return f"could not push {fixture}: {fault}; nothing was published under that name"


def not_writable(folder: str, lock_name: str, errno: int) -> str:
    """Why nothing can be written in ``folder``: its lock file cannot be created."""
    return (
        f"the folder {folder} is not writable (its lock file {lock_name} cannot be created:"
        f" {os.strerror(errno)})"
    )


@dataclass(eq=False)
class FixtureError(Exception):
    """The fixture cannot be provided; ``str()`` is the one line shown for each test."""

    def __str__(self) -> str:
        return f"ptycho-fixture: {self.describe()}"

    def describe(self) -> str:
        """The message without the ``ptycho-fixture:`` prefix."""
        raise NotImplementedError

    def __reduce__(self) -> tuple[type[FixtureError], tuple[object, ...]]:
        fields = dataclasses.fields(self)
        return (type(self), tuple(getattr(self, field.name) for field in fields))


@final
@dataclass(eq=False)
class FolderUncreatable(FixtureError):
    folder: str
    reason: str

    def describe(self) -> str:
        return f"cannot create the folder {self.folder}: {self.reason}"


@final
@dataclass(eq=False)
class LockTimeout(FixtureError):
    """Another process held the lock for longer than the lock timeout."""

    fixture: str
    lock: str
    waited: float

    def describe(self) -> str:
        return (
            f"waited {self.waited:g} s for the lock {self.lock}, which another pytest process"
            f" holds while it generates or verifies {self.fixture}; let it finish, or raise"
            " ptycho_fixture_lock_timeout (a killed holder releases the lock by itself)"
        )


@final
@dataclass(eq=False)
class NotWritable(FixtureError):
    """The fixture's folder is read-only: the cache verifies without the lock instead."""

    fixture: str
    folder: str
    lock_name: str
    errno: int

    @property
    def fix(self) -> str:
        """Why it cannot be written, and what to do about it."""
        return (
            f"{not_writable(self.folder, self.lock_name, self.errno)}; make {self.folder}"
            " writable, or point ptycho_fixture_path (or -o cache_dir=...) at a writable place"
        )

    def describe(self) -> str:
        return f"{self.fixture} cannot be generated or healed: {self.fix}"


@final
@dataclass(eq=False)
class LockFailed(FixtureError):
    """The lock could not be taken for another reason (e.g. a symbolic link in its place)."""

    lock: str
    reason: str

    def describe(self) -> str:
        return f"cannot take the lock {self.lock}: {self.reason}"


@final
@dataclass(eq=False)
class Unverifiable(FixtureError):
    """A fixture in a read-only folder that is not right, so it cannot be made right."""

    fixture: str
    problem: str
    why: str

    def describe(self) -> str:
        return f"{self.fixture} {self.problem}, and it cannot be generated or healed: {self.why}"


@final
@dataclass(eq=False)
class SidecarMissing(FixtureError):
    sidecar: str
    fixture: str

    def describe(self) -> str:
        return (
            f"the sidecar {self.sidecar} does not exist, so {self.fixture} cannot be verified;"
            f" create it with pytest --regen-fixture, then commit {self.sidecar}"
        )


@final
@dataclass(eq=False)
class SidecarBroken(FixtureError):
    sidecar: str
    problem: str

    def describe(self) -> str:
        return (
            f"the sidecar {self.sidecar} {self.problem}; restore it (e.g. git checkout"
            f" {self.sidecar}) or run pytest --regen-fixture and commit {self.sidecar};"
            " it is never overwritten without --regen-fixture"
        )


@final
@dataclass(eq=False)
class SourceMissing(FixtureError):
    """The fixture must be (re)generated but its source NPZ is not there.

    ``problem`` is what is wrong with the fixture: :data:`MISSING`, another problem, or
    ``None`` when it is regenerated on request (``--regen-fixture``).
    """

    fixture: str
    source: str
    is_dir: bool
    problem: str | None
    #: What the store said, when one was asked for the fixture first.
    store: str | None = None

    def describe(self) -> str:
        absent = (
            "is a directory but a source NPZ file is required" if self.is_dir else MISSING
        )
        if self.store is not None:
            absent += f", and the store had no verified copy ({self.store})"
        where = f"Put the source dataset at {self.source} (or point {SOURCE_OPTIONS} at it)"
        fixture, source = self.fixture, self.source
        if self.problem == MISSING:
            return (
                f"the fixture {fixture} does not exist and cannot be generated: its source"
                f" {source} {absent}. {where}, or provide {fixture} itself"
            )
        if self.problem is not None:
            return (
                f"the fixture {fixture} {self.problem}, and it cannot be regenerated: its"
                f" source {source} {absent}. {where}, or restore {fixture} (e.g. git checkout"
                f" {fixture})"
            )
        return f"cannot regenerate {fixture}: its source {source} {absent}. {where}"


@final
@dataclass(eq=False)
class Offline(FixtureError):
    """Offline mode: the fixture is not right here and the store cannot provide it.

    ``problem`` is what is wrong with the fixture; ``store`` the store as configured
    (``None``: none is); ``fault`` what the store said; ``digest`` the committed content
    digest (``None`` for a variant of the cache folder, which no store entry names).
    """

    fixture: str
    problem: str
    store: str | None
    fault: str | None
    digest: str | None

    def describe(self) -> str:
        start = f"offline mode: {self.fixture} {self.problem}"
        rule = f"nothing is generated in offline mode ({OFFLINE_SWITCHES})"
        if self.digest is None:
            return (
                f"{start}; it is a variant with no committed sidecar, so no store entry names"
                f" it, and {rule}; give it a committed sidecar (a ptycho_fixture_sets line),"
                " or run without offline mode"
            )
        if self.store is None:
            return (
                f"{start}, no store is configured ({STORE_OPTIONS}) to fetch content_sha256"
                f" {self.digest} from, and {rule}; configure the store, or run without"
                " offline mode"
            )
        return (
            f"{start}, and the store {self.store} has no verified copy of content_sha256"
            f" {self.digest} ({self.fault}); {rule}: push it from a machine that has the"
            f" source (ptycho-fixture push {self.fixture} --store {self.store}), or run"
            " without offline mode"
        )


@final
@dataclass(eq=False)
class SourceRefused(FixtureError):
    """The source breaks the data contract; ``detail`` is the contract's message."""

    fixture: str
    source: str
    detail: str

    def describe(self) -> str:
        return f"cannot generate {self.fixture} from {self.source}: {self.detail}"


@final
@dataclass(eq=False)
class WriteFailed(FixtureError):
    """Writing the fixture failed (``where`` is the file the OS named); nothing was written."""

    fixture: str
    where: str
    reason: str

    def describe(self) -> str:
        at = self.reason if self.where == self.fixture else f"{self.where}: {self.reason}"
        return f"cannot generate {self.fixture}: {at}; nothing was written"


@final
@dataclass(eq=False)
class ReadBackFailed(FixtureError):
    fixture: str
    problem: str

    def describe(self) -> str:
        return (
            f"{self.fixture} {self.problem} right after writing it; is another program"
            " writing there?"
        )


@final
@dataclass(eq=False)
class GeneratedMismatch(FixtureError):
    """A fixture generated afresh does not match the committed sidecar."""

    source: str
    sidecar: str
    expected: str
    got: str
    differ: tuple[str, ...]

    def describe(self) -> str:
        return (
            f"the fixture generated from {self.source} does not match the committed sidecar"
            f" {self.sidecar}: {digest_mismatch(self.expected, self.got, self.differ)}."
            " The generator or the source changed; if that is intended, run pytest"
            f" --regen-fixture and commit {self.sidecar}"
        )


@final
@dataclass(eq=False)
class GeometryChanged(FixtureError):
    """The configured geometry is not the one the committed sidecar records."""

    fixture: str
    sidecar: str
    recorded: str
    configured: str

    def describe(self) -> str:
        return (
            f"the sidecar {self.sidecar} of {self.fixture} records the geometry"
            f" {self.recorded}, but ptycho_fixture_geometry gives {self.configured}; if the"
            f" new geometry is intended, run pytest --regen-fixture and commit {self.sidecar}"
        )


@final
@dataclass(eq=False)
class ContractBroken(FixtureError):
    """The fixture matches its sidecar, but not the data contract."""

    detail: str
    sidecar: str

    def describe(self) -> str:
        return (
            f"{self.detail}; the fixture matches {self.sidecar} but breaks the data contract:"
            " fix the source, then run pytest --regen-fixture"
        )


@final
@dataclass(eq=False)
class RestoreFailed(FixtureError):
    """The session tensors were modified, and the fixture to restore them is not right."""

    fixture: str
    problem: str | None

    def describe(self) -> str:
        return (
            f"cannot restore the session tensors: {self.fixture}"
            f" {self.problem or 'changed during the run'}"
        )
