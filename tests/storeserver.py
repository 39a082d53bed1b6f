"""Stores on 127.0.0.1 for the store tests: an HTTP server over a folder that can misbehave
on purpose, a port where nothing listens, a socket that never answers, and moto's S3."""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import logging
import socket
import ssl
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

#: What the HTTP store does with a request for an entry that is there.
MODES = (
    "serve",
    "truncate",
    "error",
    "silent",
    "endless",
    "redirect",
    "chunked",
    "not-http",
    "endless-headers",
)


@dataclass
class HttpStoreServer:
    """``python -m http.server`` over ``folder`` on 127.0.0.1, in a thread of the test.

    ``mode``: ``serve`` answers as http.server does; ``truncate`` sends the full
    Content-Length and half the bytes, then closes; ``error`` answers 500; ``silent``
    reads the request and never answers (until the server stops); ``endless`` answers
    with no Content-Length and zeros until the client goes; ``redirect`` sends each
    request for ``/NAME`` to ``/moved/NAME`` (301), which is served; ``chunked`` sends
    the file in chunks (Transfer-Encoding: chunked); ``not-http`` answers with a line
    that is not HTTP; ``endless-headers`` sends a status line, then headers until the
    client goes. ``requests`` lists the paths asked for, in order.
    """

    folder: Path
    mode: str = "serve"
    #: A certificate and key (PEM files) to serve HTTPS with.
    tls: tuple[Path, Path] | None = None
    requests: list[str] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _released: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

    def __enter__(self) -> HttpStoreServer:  # noqa: PYI034 - Self needs Python 3.11
        store = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                store.requests.append(self.path)
                mode = store.mode
                if mode == "silent":
                    store._released.wait()
                    self.close_connection = True
                    return
                if mode == "error":
                    self.send_error(500, "Internal Server Error")
                    return
                if mode == "endless":
                    self.send_response(200)
                    self.end_headers()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        while not store._released.is_set():
                            self.wfile.write(bytes(1 << 20))
                    return
                if mode == "redirect" and not self.path.startswith("/moved/"):
                    self.send_response(301)
                    self.send_header("Location", f"/moved{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode == "redirect":
                    self.path = self.path.removeprefix("/moved")
                if mode == "not-http":
                    self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
                    self.close_connection = True
                    return
                if mode == "endless-headers":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        while not store._released.is_set():
                            self.wfile.write(b"X-Padding: " + b"x" * 1000 + b"\r\n")
                    return
                if mode == "chunked":
                    path = Path(self.translate_path(self.path))
                    if path.is_file():
                        data = path.read_bytes()
                        self.protocol_version = "HTTP/1.1"
                        self.send_response(200)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.send_header("Connection", "close")
                        self.end_headers()
                        for start in range(0, len(data), 100_000):
                            chunk = data[start : start + 100_000]
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.write(b"0\r\n\r\n")
                        self.close_connection = True
                        return
                if mode == "truncate":
                    path = Path(self.translate_path(self.path))
                    if path.is_file():
                        data = path.read_bytes()
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[: len(data) // 2])
                        self.close_connection = True
                        return
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        handler = partial(Handler, directory=str(self.folder))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def entry_requests(self) -> list[str]:
        """The requests for entries (``/DIGEST.npz``)."""
        return [path for path in self.requests if path.endswith(".npz")]


@dataclass
class RawReplyServer:
    """A server on 127.0.0.1 that answers every request with :attr:`reply`, byte for byte,
    then closes the connection: the replies no HTTP server library would send.

    Connections are served one at a time, in a thread of the test; ``requests`` counts
    the requests read.
    """

    reply: bytes = b""
    requests: int = 0
    _sock: socket.socket | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._sock is not None
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> RawReplyServer:  # noqa: PYI034 - Self needs Python 3.11
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                connection, _ = self._sock.accept()
            except TimeoutError:
                continue
            with connection, contextlib.suppress(OSError):
                connection.settimeout(10)
                request = b""
                while b"\r\n\r\n" not in request:
                    block = connection.recv(65536)
                    if not block:
                        break
                    request += block
                self.requests += 1
                connection.sendall(self.reply)
                connection.shutdown(socket.SHUT_WR)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None and self._sock is not None
        self._thread.join()
        self._sock.close()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, signed by its own key: ``(certificate, key)`` PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "store.crt", folder / "store.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def closed_port() -> Iterator[str]:
    """An http:// URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@dataclass
class Silent:
    """A socket on 127.0.0.1 that accepts connections and never answers."""

    sock: socket.socket

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def connections(self) -> int:
        """How many connections were made to it so far (each is taken from the backlog)."""
        self.sock.setblocking(False)
        count = 0
        while True:
            try:
                accepted, _ = self.sock.accept()
            except BlockingIOError:
                return count
            accepted.close()
            count += 1


@contextlib.contextmanager
def silent_socket() -> Iterator[Silent]:
    """A :class:`Silent` socket. The kernel completes each handshake from the listen
    backlog (room for 64); no one ever reads."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield Silent(sock)


@contextlib.contextmanager
def never_answers() -> Iterator[str]:
    """An http:// URL on 127.0.0.1 whose socket accepts connections and never answers."""
    with silent_socket() as silent:
        yield silent.url


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1, with a bucket ``fixtures``; yields the environment
    a child needs to reach it (endpoint and dummy credentials).

    moto's ThreadedMotoServer, but moto's own ``Server`` response header is dropped:
    werkzeug sends one too, and aiohttp (under s3fs) refuses a reply with two
    (getmoto/moto#9930).
    """
    import boto3
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)

    def one_server_header(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            kept = [(name, value) for name, value in headers if name.lower() != "server"]
            return start_response(status, kept, exc_info)

        return app(environ, start)

    server = make_server("127.0.0.1", 0, one_server_header, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_port}",
        }
        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        # moto keeps its buckets per process, not per server: start from none.
        reset = f"{env['AWS_ENDPOINT_URL']}/moto-api/reset"
        urllib.request.urlopen(urllib.request.Request(reset, method="POST"), timeout=30).close()
        client.create_bucket(Bucket="fixtures")
        yield env
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
