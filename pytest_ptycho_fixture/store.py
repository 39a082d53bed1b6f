"""A store of verified fixtures shared by many machines, each named by its content digest.

An entry is a fixture NPZ, stored as ``<store>/<content_sha256>.npz``: the digest that the
committed sidecar records names it, and a copy is used only when its arrays have that
digest again. :func:`open_store` gives one of two stores behind one interface, fetch and
push:

- :class:`HttpStore`, for ``http://`` and ``https://``, cannot be written. It reads
  through the standard library's ``urllib``, imported on first use, rather than
  fsspec's HTTP filesystem, whose aiohttp a project would have to install for one GET.
- :class:`FsspecStore`, for every other URL and for a folder: fsspec and the protocol's
  package (s3fs for ``s3://``, gcsfs for ``gs://``).

A download goes to a temporary file beside its target, is checked there, and only then
takes the target's name (:func:`.atomic.atomic_writer`). An upload is never visible
half-written: on a filesystem it is written under a temporary name in the store and
renamed, which replaces a file atomically, so two machines pushing the same digest both
succeed; an object store (S3, GCS, Azure) makes an object visible only once its upload
is complete, so an upload goes straight to its name there.

This module knows nothing of pytest; every failure is a :class:`StoreFault`.
"""

from __future__ import annotations

import hashlib
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, final

from ._version import __version__
from .atomic import atomic_writer
from .spec import store_label, store_scheme

#: Bytes copied at a time.
COPY_BYTES = 1 << 20
#: fsspec protocols whose objects appear only once their upload is complete.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
#: The package each protocol needs, and the extra that installs it.
PROTOCOL_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
}
#: Where a store's timeout is set, for the messages that name it.
TIMEOUT_OPTION = "ptycho_fixture_store_timeout"
#: A check of a downloaded file: ``None`` if it is the fixture, else what is wrong with it.
Check = Callable[[Path], "str | None"]


class StoreFault(Exception):
    """A store could not provide or take an entry.

    ``store`` is the store as configured, ``entry`` the entry's name (``DIGEST.npz``; empty
    when the store itself cannot be used) and ``reason`` what happened, a phrase that
    follows the entry's name (or the store's). ``missing`` is true when the store answered
    that it has no such entry.
    """

    def __init__(self, store: str, entry: str, reason: str, missing: bool = False) -> None:
        super().__init__(store, entry, reason, missing)
        self.store = store
        self.entry = entry
        self.reason = reason
        self.missing = missing

    def __str__(self) -> str:
        return f"{self.store}: {self.entry} {self.reason}" if self.entry else self.about

    @property
    def about(self) -> str:
        """The fault as a phrase about the entry (or the store): ``ENTRY REASON``."""
        return f"{self.entry} {self.reason}" if self.entry else f"{self.store} {self.reason}"

    def __reduce__(self) -> tuple[type[StoreFault], tuple[str, str, str, bool]]:
        return (type(self), (self.store, self.entry, self.reason, self.missing))


class Store(Protocol):
    """Where verified fixtures are kept by digest."""

    @property
    def label(self) -> str:
        """The store as messages name it (a URL without its password, or a folder)."""
        ...

    @property
    def writable(self) -> bool:
        """Whether :meth:`push` can work at all (an HTTP store is read-only)."""
        ...

    def fetch(self, digest: str, target: Path, check: Check, max_bytes: int) -> None:
        """Download the entry of ``digest`` to ``target`` if ``check`` accepts it.

        ``target`` is replaced only by a complete download that ``check`` accepted; a
        download is refused as soon as it passes ``max_bytes``. Raises
        :class:`StoreFault`; an ``OSError`` naming ``target`` if it cannot be written.
        """
        ...

    def push(self, source: Path, digest: str) -> bool:
        """Upload ``source`` as the entry of ``digest``; ``False`` if it held those bytes."""
        ...


def entry_name(digest: str) -> str:
    """The name of the entry of ``digest``; refuses anything but a SHA-256 in hex."""
    if len(digest) != 64 or not set(digest) <= set(string.hexdigits.lower()):
        raise ValueError(f"{digest!r} is not a SHA-256 in lowercase hex")
    return f"{digest}.npz"


def open_store(url: str, timeout: float, label: str | None = None) -> Store:
    """The store at ``url``: a folder, or a URL as :func:`.spec.parse_store` gives it.

    ``timeout`` bounds each connection and each wait for more bytes (HTTP, S3, GCS);
    ``label`` is how messages name the store (default: :func:`.spec.store_label`).
    """
    scheme = store_scheme(url)
    label = label or store_label(None, url)
    if scheme in ("http", "https"):
        return HttpStore(url.rstrip("/"), timeout, label)
    try:
        import fsspec
    except ImportError:
        raise _unusable(
            label, "needs fsspec: pip install 'pytest-ptycho-fixture[remote]'"
        ) from None
    options: dict[str, Any] = {}
    if scheme in ("s3", "s3a"):
        # botocore: one attempt per request, each bounded (it would retry for minutes);
        # s3fs's own retries are turned off below.
        options["config_kwargs"] = {
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "retries": {"max_attempts": 1},
        }
    elif scheme in ("gs", "gcs"):
        options["timeout"] = timeout
    try:
        fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True, **options)
    except ImportError:
        package, extra = PROTOCOL_EXTRAS.get(scheme, (f"the fsspec package for {scheme}://", ""))
        install = f"pip install 'pytest-ptycho-fixture[{extra}]'" if extra else f"install {package}"
        raise _unusable(label, f"needs {package}: {install}") from None
    # An unknown protocol, or a backend's own error (credentials, a bad endpoint).
    except Exception as exc:  # noqa: BLE001
        raise _unusable(label, f"cannot be opened: {_one_line(exc)}") from None
    if scheme in ("s3", "s3a"):
        # One try per request, as botocore's: s3fs would try a silent endpoint five times
        # per request (20 timeouts for one fetch), and a fault only means generating.
        fs.retries = 1
    object_store = bool(set(_protocols(fs)) & OBJECT_STORES)
    return FsspecStore(fs, str(root).rstrip("/"), label, object_store)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _unusable(label: str, reason: str) -> StoreFault:
    return StoreFault(label, "", f"cannot be used: it {reason}")


def _one_line(exc: BaseException) -> str:
    """An exception from a library as one short line: its type and its words."""
    words = " ".join(str(exc).split()) or "no details"
    if len(words) > 200:
        words = words[:197] + "..."
    return f"{type(exc).__name__}: {words}"


def _copy(
    read: Callable[[int], bytes],
    handle: IO[bytes],
    fault: Callable[[str], StoreFault],
    expected: int | None,
    max_bytes: int,
) -> None:
    """Copy what ``read`` gives into ``handle``; a read that fails is ``fault``'s."""
    if expected is not None and expected > max_bytes:
        raise fault(
            f"would be {expected} bytes, more than an NPZ of the sidecar's arrays can be"
            f" ({max_bytes})"
        )
    total = 0
    while True:
        try:
            block = read(COPY_BYTES)
        # Whatever the transport raises, the entry did not arrive.
        except Exception as exc:  # noqa: BLE001
            raise fault(f"could not be read to the end: {_describe_read(exc)}") from None
        if not block:
            break
        total += len(block)
        if total > max_bytes:
            raise fault(
                f"was refused after {max_bytes} bytes, more than an NPZ of the sidecar's"
                " arrays can be"
            )
        handle.write(block)
    if expected is not None and total != expected:
        raise fault(f"was truncated: {total} of {expected} bytes arrived")


def _content_length(response: Any, fault: Callable[[str], StoreFault]) -> int | None:
    """The body's length as the reply declares it; ``None`` for a body that runs until
    the connection closes or comes in chunks.

    Only ASCII digits make a length: ``int()`` also takes ``"1_000"``, ``"+5"`` and
    ``" 5 "``, and ``str.isdigit()`` takes ``"²"``, which ``int()`` then refuses.
    """
    if getattr(response, "chunked", False):
        return None
    values = [value.strip(" \t") for value in response.headers.get_all("Content-Length") or []]
    if not values:
        return None
    if not all(value and value.isascii() and value.isdigit() for value in values):
        shown = ", ".join(repr(value) for value in values)
        raise fault(f"could not be fetched: its Content-Length is {shown}, not a number of bytes")
    if len({int(value) for value in values}) > 1:
        raise fault(f"could not be fetched: it declares two lengths ({', '.join(values)})")
    return int(values[0])


def _describe_read(exc: BaseException) -> str:
    import http.client

    if isinstance(exc, http.client.IncompleteRead):
        expected = "" if exc.expected is None else f" of {len(exc.partial) + exc.expected}"
        return f"truncated after {len(exc.partial)}{expected} bytes"
    if isinstance(exc, TimeoutError):
        return f"no bytes came for the timeout ({TIMEOUT_OPTION})"
    return _one_line(exc)


def _status_fault(fault: Callable[..., StoreFault], code: int, reason: str) -> StoreFault:
    missing = code in (404, 410)
    where = "is not in the store" if missing else "could not be fetched"
    return fault(f"{where}: HTTP {code} {reason}", missing)


def _checked(check: Check, fault: Callable[[str], StoreFault]) -> Callable[[Path], None]:
    def run(temp: Path) -> None:
        problem = check(temp)
        if problem is not None:
            raise fault(f"is not the fixture: it {problem}")

    return run


@final
@dataclass(frozen=True)
class HttpStore:
    """A read-only store served over HTTP(S), such as a static site or a bucket's URL."""

    url: str
    timeout: float
    label: str
    writable: bool = False

    def fetch(self, digest: str, target: Path, check: Check, max_bytes: int) -> None:
        entry = entry_name(digest)
        url = f"{self.url}/{entry}"

        def fault(reason: str, missing: bool = False) -> StoreFault:
            return StoreFault(self.label, entry, reason, missing)

        headers = {"User-Agent": f"pytest-ptycho-fixture/{__version__}"}
        response = self._open(url, headers, fault)
        with response:
            expected = _content_length(response, fault)
            with atomic_writer(target, _checked(check, fault)) as handle:
                _copy(response.read, handle, fault, expected, max_bytes)

    def _open(self, url: str, headers: dict[str, str], fault: Callable[..., StoreFault]) -> Any:
        """The response to a GET of ``url``, its status line and headers read."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(url, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise _status_fault(fault, exc.code, str(exc.reason)) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                detail = self._no_answer()
            else:
                detail = str(getattr(reason, "strerror", None) or reason)
            raise fault(self._unreachable(detail)) from None
        except TimeoutError:
            raise fault(f"could not be fetched: {self._no_answer()}") from None
        # A broken reply: its status line or its headers (http.client's own exceptions,
        # and whatever else a reply that is not HTTP raises there).
        except Exception as exc:  # noqa: BLE001
            raise fault(f"could not be fetched: {_one_line(exc)}") from None

    def _no_answer(self) -> str:
        return f"no answer within {self.timeout:g} s ({TIMEOUT_OPTION})"

    @staticmethod
    def _unreachable(detail: str) -> str:
        return f"could not be fetched: the store is unreachable ({detail})"

    def push(self, source: Path, digest: str) -> bool:
        raise StoreFault(
            self.label,
            entry_name(digest),
            "cannot be pushed: an HTTP store is read-only; push to the folder or bucket it serves",
        )


@final
@dataclass(frozen=True)
class FsspecStore:
    """A store on any filesystem fsspec knows: a folder, NFS, S3, GCS."""

    fs: Any
    root: str
    label: str
    #: Objects appear only once uploaded whole, so no temporary name is needed.
    object_store: bool
    writable: bool = True

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def fetch(self, digest: str, target: Path, check: Check, max_bytes: int) -> None:
        entry = entry_name(digest)

        def fault(reason: str, missing: bool = False) -> StoreFault:
            return StoreFault(self.label, entry, reason, missing)

        try:
            remote = self.fs.open(self._path(entry), "rb")
        except FileNotFoundError:
            raise fault("is not in the store", True) from None
        except Exception as exc:  # noqa: BLE001 - the backend's errors are its own types
            raise fault(f"could not be fetched: {_one_line(exc)}") from None
        with remote:
            size = getattr(remote, "size", None)
            with atomic_writer(target, _checked(check, fault)) as handle:
                known = size if isinstance(size, int) else None
                _copy(remote.read, handle, fault, known, max_bytes)

    def push(self, source: Path, digest: str) -> bool:
        from .digests import file_sha256

        entry = entry_name(digest)
        final = self._path(entry)
        try:
            if self.fs.exists(final):
                held = hashlib.sha256(self.fs.cat_file(final)).hexdigest()
                if held == file_sha256(source):
                    return False
            self.fs.makedirs(self.root, exist_ok=True)
            if self.object_store:
                self.fs.put_file(str(source), final)
                return True
            temp = self._path(f".{entry}.{uuid.uuid4().hex}.tmp")
            try:
                self.fs.put_file(str(source), temp)
                self.fs.mv(temp, final)
            except BaseException:
                try:
                    self.fs.rm_file(temp)
                except Exception:  # noqa: BLE001, S110 - the write failed already; say that
                    pass
                raise
        except Exception as exc:  # noqa: BLE001 - the backend's errors are its own types
            raise StoreFault(self.label, entry, f"could not be pushed: {_one_line(exc)}") from None
        return True
