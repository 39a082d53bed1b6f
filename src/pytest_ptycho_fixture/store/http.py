"""A read-only store served over HTTP(S), read through the standard library's ``urllib``.

``urllib`` is imported on first use. It is used rather than fsspec's HTTP filesystem,
whose aiohttp a project would have to install for one GET (and whose import alone
takes longer than generating the fixture). Every reply that is not a plain answer with
the entry's bytes is a :class:`.StoreFault`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, final

from .._version import __version__
from ..atomic import atomic_writer
from .protocol import TIMEOUT_OPTION, Check, StoreFault, entry_name
from .transfer import checked, copy, one_line


def content_length(response: Any, fault: Callable[[str], StoreFault]) -> int | None:
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


def status_fault(fault: Callable[..., StoreFault], code: int, reason: str) -> StoreFault:
    missing = code in (404, 410)
    where = "is not in the store" if missing else "could not be fetched"
    return fault(f"{where}: HTTP {code} {reason}", missing)


@final
@dataclass(frozen=True)
class HttpStore:
    """A read-only store served over HTTP(S), such as a static site or a bucket's URL."""

    url: str
    timeout: float
    label: str
    writable: bool = False

    @classmethod
    def open(cls, url: str, timeout: float, label: str) -> HttpStore:
        """The store at ``url``; ``timeout`` bounds the connection and each read."""
        return cls(url.rstrip("/"), timeout, label)

    def fetch(self, digest: str, target: Path, check: Check, max_bytes: int) -> None:
        entry = entry_name(digest)
        url = f"{self.url}/{entry}"

        def fault(reason: str, missing: bool = False) -> StoreFault:
            return StoreFault(self.label, entry, reason, missing)

        headers = {"User-Agent": f"pytest-ptycho-fixture/{__version__}"}
        response = self._open(url, headers, fault)
        with response:
            expected = content_length(response, fault)
            with atomic_writer(target, checked(check, fault)) as handle:
                copy(response.read, handle, fault, expected, max_bytes)

    def _open(self, url: str, headers: dict[str, str], fault: Callable[..., StoreFault]) -> Any:
        """The response to a GET of ``url``, its status line and headers read."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(url, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise status_fault(fault, exc.code, str(exc.reason)) from None
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
            raise fault(f"could not be fetched: {one_line(exc)}") from None

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
