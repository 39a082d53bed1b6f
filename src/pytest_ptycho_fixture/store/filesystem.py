"""A store on any filesystem fsspec knows: a folder, NFS, S3, GCS.

An upload is never visible half-written: on a filesystem it is written under a
temporary name in the store and renamed, which replaces a file atomically, so two
machines pushing the same digest both succeed; an object store (S3, GCS, Azure) makes an
object visible only once its upload is complete, so an upload goes straight to its name
there.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, final

from ..atomic import atomic_writer
from ..spec import store_scheme
from .protocol import Check, StoreFault, entry_name
from .transfer import checked, copy, one_line

#: fsspec protocols whose objects appear only once their upload is complete.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
#: The package each protocol needs, and the extra that installs it.
PROTOCOL_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
}


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

    @classmethod
    def open(cls, url: str, timeout: float, label: str) -> FsspecStore:
        """The store at ``url`` (a folder or any fsspec URL), through fsspec and the
        protocol's package. ``timeout`` bounds each connection and wait (S3, GCS)."""
        scheme = store_scheme(url)
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
            package, extra = PROTOCOL_EXTRAS.get(
                scheme, (f"the fsspec package for {scheme}://", "")
            )
            install = (
                f"pip install 'pytest-ptycho-fixture[{extra}]'" if extra else f"install {package}"
            )
            raise _unusable(label, f"needs {package}: {install}") from None
        # An unknown protocol, or a backend's own error (credentials, a bad endpoint).
        except Exception as exc:  # noqa: BLE001
            raise _unusable(label, f"cannot be opened: {one_line(exc)}") from None
        if scheme in ("s3", "s3a"):
            # One try per request, as botocore's: s3fs would try a silent endpoint five
            # times per request (20 timeouts for one fetch), and a fault only means
            # generating.
            fs.retries = 1
        object_store = bool(set(_protocols(fs)) & OBJECT_STORES)
        return cls(fs, str(root).rstrip("/"), label, object_store)

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
            raise fault(f"could not be fetched: {one_line(exc)}") from None
        with remote:
            size = getattr(remote, "size", None)
            with atomic_writer(target, checked(check, fault)) as handle:
                known = size if isinstance(size, int) else None
                copy(remote.read, handle, fault, known, max_bytes)

    def push(self, source: Path, digest: str) -> bool:
        from ..npz.digests import file_sha256

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
            raise StoreFault(self.label, entry, f"could not be pushed: {one_line(exc)}") from None
        return True


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _unusable(label: str, reason: str) -> StoreFault:
    return StoreFault(label, "", f"cannot be used: it {reason}")
