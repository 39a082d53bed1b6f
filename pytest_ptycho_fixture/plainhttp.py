"""One HTTP/1.1 GET over a plain socket, for the HTTP store.

Own code, not ``urllib.request``, for the store benchmark's rows: urllib imports
``http.client``, ``email`` and ``ssl``, 40 ms in a process that has not imported them
(a project whose tests import numpy but not torch), more than the whole fetch of a
fixture takes (``benchmarks/bench_store.py``). It does only the plain case: ``http://``,
no proxy configured, and a reply whose body is its bytes (delimited by Content-Length or
by the end of the connection). For a URL that :func:`takes` refuses, a redirect, a
chunked reply or one that :func:`get` cannot parse, the caller uses urllib.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: The most bytes of status line and headers read before a reply is refused.
MAX_HEAD = 64 << 10
#: Statuses that send the client elsewhere.
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class BadReply(Exception):
    """The server's answer is not an HTTP/1.x reply."""


@dataclass
class Reply:
    """A reply's status and headers; its body is read with :meth:`read`."""

    status: int
    reason: str
    #: Header names in lowercase; a repeated header keeps its last value.
    headers: dict[str, str]
    _sock: socket.socket
    _buffered: bytes
    #: Body bytes still to come when the length is known, else ``None``.
    _left: int | None = field(default=None)

    @property
    def length(self) -> int | None:
        value = self.headers.get("content-length", "")
        return int(value) if value.isdigit() else None

    @property
    def plain(self) -> bool:
        """Whether the body is sent as it is: not chunked, not a redirect."""
        coding = self.headers.get("transfer-encoding", "identity").strip().lower()
        return coding == "identity" and self.status not in REDIRECTS

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body; ``b""`` at its end."""
        if self._left is not None:
            size = min(size, self._left)
        if size <= 0:
            return b""
        if self._buffered:
            block, self._buffered = self._buffered[:size], self._buffered[size:]
        else:
            block = self._sock.recv(size)
        if self._left is not None:
            self._left -= len(block)
        return block

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Reply:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def takes(url: str) -> bool:
    """Whether :func:`get` can fetch ``url`` itself: ``http://``, no password, no proxy."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
        return False
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        return False
    # Anything to encode (a space, an international name) is left to urllib.
    if not all(" " < character < "\x7f" for character in url):
        return False
    # Any proxy setting at all: urllib applies it (and no_proxy) as the user expects.
    return not any(
        name.lower().endswith("_proxy") and name.lower() != "no_proxy" and value
        for name, value in os.environ.items()
    )


def get(url: str, timeout: float, headers: dict[str, str]) -> Reply:
    """Send a GET for ``url`` (which :func:`takes`) and read the reply's status and headers.

    ``timeout`` bounds the connection and each read. Raises ``OSError`` (a
    ``TimeoutError`` among them) when the server cannot be reached or goes silent, and
    :class:`BadReply` when what it sends is not an HTTP reply.
    """
    parts = urlsplit(url)
    host = parts.hostname
    assert host is not None
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    shown = f"[{host}]" if ":" in host else host
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {shown}" + ("" if port == 80 else f":{port}"),
        "Accept-Encoding: identity",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    # As bytes: getaddrinfo would encode a str with the idna codec, whose import costs
    # 1.5 ms; takes() let through only ASCII. (It takes bytes; the stub says str only.)
    address = (host.encode("ascii"), port)
    sock = socket.create_connection(address, timeout=timeout)  # type: ignore[arg-type]
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        head, rest = _head(sock)
        reply = _parse(head, sock, rest)
    except BaseException:
        sock.close()
        raise
    return reply


def _head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The status line and headers, and the body bytes that came with them."""
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            return data[:end], data[end + 4 :]
        if len(data) > MAX_HEAD:
            raise BadReply(f"its headers run past {MAX_HEAD} bytes")
        block = sock.recv(MAX_HEAD)
        if not block:
            raise BadReply("the connection closed before the headers ended")
        data += block


def _parse(head: bytes, sock: socket.socket, rest: bytes) -> Reply:
    status_line, *header_lines = head.decode("iso-8859-1").split("\r\n")
    version, _, after = status_line.partition(" ")
    code, _, reason = after.partition(" ")
    if not version.startswith("HTTP/1.") or not (len(code) == 3 and code.isdigit()):
        raise BadReply(f"its status line is {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise BadReply(f"a header line is {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    reply = Reply(int(code), reason.strip(), headers, sock, rest)
    reply._left = reply.length
    return reply
