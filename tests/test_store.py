"""The shared store: fetch before generating, push, offline mode, and every fault.

Stores are real and local: a folder (``file://`` and plain paths), an HTTP server on
127.0.0.1 that can truncate or fail on purpose, a closed port, a socket that never
answers, and moto's S3 server on 127.0.0.1. No test reaches any other address.
"""

from __future__ import annotations

import contextlib
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import cli_command, needs_permissions, one_error_line, run_cli
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from processes import Finished, Watcher, environment, finish, pytest_argv, run, start
from storeserver import (
    HttpStoreServer,
    RawReplyServer,
    closed_port,
    never_answers,
    s3_server,
    self_signed_certificate,
    silent_socket,
)

from pytest_ptycho_fixture import messages, simulate
from pytest_ptycho_fixture.cache import FixtureCache
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz import writer as npzwrite
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.spec import (
    FixtureSpec,
    OptionError,
    parse_store,
    parse_switch,
    store_label,
)
from pytest_ptycho_fixture.stats import Stats
from pytest_ptycho_fixture.store import StoreFault, entry_name, open_store

TESTS = 8
USES_ARRAYS = f"""
import pytest

@pytest.mark.parametrize("i", range({TESTS}))
def test_uses_the_fixture(ptycho_arrays, i):
    assert ptycho_arrays["diffraction"].shape == (64, 64, 64)
"""
FIXTURE = Path("tests/fixtures/scan.npz")
SIDECAR = FIXTURE.with_suffix(".json")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy configured on the machine must not see the requests to 127.0.0.1.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("PTYCHO_FIXTURE_OFFLINE", raising=False)


@dataclass(frozen=True)
class Made:
    """A committed fixture, its sidecar and its source, made once for the module."""

    source: Path
    fixture: Path
    sidecar: Path
    digest: str
    #: Another valid fixture, of other content: the wrong bytes under the right name.
    other: Path


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    folder = tmp_path_factory.mktemp("made")
    source = folder / "scan.npz"
    npzwrite.write_npz(source, simulate.simulate_source(positions=200), compress=False)
    generate_fixture(source, folder / "scan-fixture.npz", 64)
    generate_fixture(source, folder / "other.npz", 64, strategy="spread")
    return Made(
        source,
        folder / "scan-fixture.npz",
        folder / "scan-fixture.json",
        load_npz(folder / "scan-fixture.npz").content_sha256,
        folder / "other.npz",
    )


def leftovers(folder: Path) -> list[str]:
    """Temporary files in ``folder``: what a half-done download or upload would leave."""
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".tmp"))


# -- the store interface ------------------------------------------------------------


def test_an_entry_is_named_by_a_digest_and_nothing_else() -> None:
    assert entry_name("ab" * 32) == f"{'ab' * 32}.npz"
    for bad in ("../" * 21 + "a", "AB" * 32, "ab" * 31, "g" * 64):
        with pytest.raises(ValueError, match="not a SHA-256"):
            entry_name(bad)


def test_a_store_fault_keeps_its_data_and_survives_pickling() -> None:
    fault = StoreFault("https://h/f", "a.npz", "is not in the store: HTTP 404 Not Found", True)
    again = pickle.loads(pickle.dumps(fault))
    assert str(again) == str(fault) == "https://h/f: a.npz is not in the store: HTTP 404 Not Found"
    assert (again.store, again.entry, again.missing) == ("https://h/f", "a.npz", True)
    unusable = StoreFault("s3://b", "", "cannot be used: it needs s3fs")
    assert str(unusable) == unusable.about == "s3://b cannot be used: it needs s3fs"


def test_a_store_is_given_as_a_folder_or_a_url(tmp_path: Path) -> None:
    assert parse_store("", "o", tmp_path) is None
    assert parse_store("ci-store", "o", tmp_path) == str(tmp_path / "ci-store")
    assert parse_store("file:///shared/fx/", "o", tmp_path) == "file:///shared/fx"
    assert parse_store("https://h.org/fx/", "o", tmp_path) == "https://h.org/fx"
    assert parse_store("s3://bucket/fx", "o", tmp_path) == "s3://bucket/fx"
    for bad in ("https://", "s3:///bucket", "9x://a", "ht tp://a"):
        with pytest.raises(OptionError) as raised:
            parse_store(bad, "ini option ptycho_fixture_store", tmp_path)
        assert str(raised.value).startswith(
            f"ini option ptycho_fixture_store: {bad!r} is not a store URL: expected a folder"
        )


def test_a_store_is_named_without_its_password(tmp_path: Path) -> None:
    assert store_label(None, "https://ci:s3cret@h.org/fx") == "https://ci:***@h.org/fx"
    assert store_label(None, "https://ci@h.org/fx") == "https://ci@h.org/fx"
    assert store_label(tmp_path, str(tmp_path / "store")) == "store"


def test_offline_mode_is_a_switch_with_a_clear_refusal() -> None:
    assert parse_switch(" Yes ", "E") and parse_switch("1", "E")
    assert not parse_switch("", "E") and not parse_switch("off", "E")
    with pytest.raises(OptionError, match=r"^E: 'maybe' is not a switch: expected 1, true"):
        parse_switch("maybe", "E")


def test_the_summary_says_what_was_fetched_from_which_store() -> None:
    stats = Stats(verifications=2)
    stats.merge(Stats(fetches=[("gw1", "https://h/fx", 0.25)], verifications=1).to_dict())
    assert stats.summary()[0] == (
        "ptycho-fixture: 0 generations, fetched from https://h/fx (1 file: gw1, 0.25 s),"
        " 3 verifications"
    )


# -- the cache with a store: fetch, fall back, offline -------------------------------


def committed_spec(folder: Path, made: Made, source: Path | None) -> FixtureSpec:
    """The fixture of a project: a committed sidecar, no NPZ yet."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(made.sidecar, folder / "scan.json")
    return FixtureSpec(folder / "scan.npz", folder / "scan.json", source)


def put(store: Path, made: Made, what: Path | None = None, damage: bool = False) -> Path:
    """Put ``what`` (default: the fixture) into a folder store under the fixture's digest."""
    store.mkdir(parents=True, exist_ok=True)
    entry = store / entry_name(made.digest)
    data = bytearray((what or made.fixture).read_bytes())
    if damage:
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    entry.write_bytes(bytes(data))
    return entry


def test_a_missing_fixture_is_fetched_and_checked_before_it_takes_its_name(
    tmp_path: Path, made: Made
) -> None:
    store = tmp_path / "store"
    put(store, made)
    spec = committed_spec(tmp_path / "project", made, tmp_path / "absent.npz")
    cache = FixtureCache(store=f"file://{store}", root=tmp_path)
    verified = cache.get(spec)
    assert verified.metadata["content_sha256"] == made.digest
    assert load_npz(spec.path).content_sha256 == made.digest
    assert cache.stats.generations == []
    assert [(who, where) for who, where, _ in cache.stats.fetches] == [("main", f"file://{store}")]
    assert leftovers(spec.path.parent) == []


def test_a_damaged_fixture_is_healed_from_the_store(tmp_path: Path, made: Made) -> None:
    store = tmp_path / "store"
    put(store, made)
    spec = committed_spec(tmp_path / "project", made, None)
    shutil.copyfile(made.other, spec.path)
    cache = FixtureCache(store=str(store), root=tmp_path)
    cache.get(spec)
    assert cache.stats.generations == [] and len(cache.stats.fetches) == 1
    (note,) = cache.stats.healed
    assert note.startswith("healed project/scan.npz: it did not match the sidecar")
    assert note.endswith("; fetched from store, it matches project/scan.json")


@contextlib.contextmanager
def folder_store(tmp_path: Path, made: Made, **put_options: object) -> Iterator[str]:
    store = tmp_path / "store"
    store.mkdir()
    if put_options.get("what") is not None or put_options.get("damage"):
        put(store, made, **put_options)  # type: ignore[arg-type]
    yield f"file://{store}"


@contextlib.contextmanager
def http_store(tmp_path: Path, made: Made, mode: str, **put_options: object) -> Iterator[str]:
    store = tmp_path / "served"
    store.mkdir()
    if mode != "missing":
        put(store, made, **put_options)  # type: ignore[arg-type]
    with HttpStoreServer(store, "serve" if mode == "missing" else mode) as server:
        yield server.url


@contextlib.contextmanager
def s3_store(tmp_path: Path, made: Made, mode: str) -> Iterator[str]:
    """The bucket of moto's S3 server, reached through the environment s3fs reads; for
    ``unreachable`` and ``silent`` the endpoint is a closed port or a mute socket."""
    with contextlib.ExitStack() as stack:
        if mode == "unreachable":
            endpoint = stack.enter_context(closed_port())
            env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}
        elif mode == "silent":
            endpoint = stack.enter_context(never_answers())
            env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}
        else:
            env = stack.enter_context(s3_server())
            endpoint = env["AWS_ENDPOINT_URL"]
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        for key, value in {**env, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(key, value)
        url = "s3://fixtures/ci"
        if mode == "other":
            staged = tmp_path / "staged"
            put(staged, made, what=made.other)
            open_store(url, 5).push(staged / entry_name(made.digest), made.digest)
        yield url


#: Each fault: how to make the store, and the words that name what happened.
FAULTS: dict[str, tuple[Callable[[Path, Made], contextlib.AbstractContextManager[str]], str]] = {
    "folder, no entry": (lambda tmp, made: folder_store(tmp, made), "is not in the store"),
    "folder, another fixture's bytes": (
        lambda tmp, made: folder_store(tmp, made, what=made.other),
        "is not the fixture: it has content_sha256",
    ),
    "folder, damaged bytes": (
        lambda tmp, made: folder_store(tmp, made, damage=True),
        "is not the fixture: it was damaged",
    ),
    "HTTP 404": (
        lambda tmp, made: http_store(tmp, made, "missing"),
        "is not in the store: HTTP 404",
    ),
    "HTTP 500": (
        lambda tmp, made: http_store(tmp, made, "error"),
        "could not be fetched: HTTP 500",
    ),
    "HTTP truncated": (
        lambda tmp, made: http_store(tmp, made, "truncate"),
        "was truncated: ",
    ),
    "HTTP, another fixture's bytes": (
        lambda tmp, made: http_store(tmp, made, "serve", what=made.other),
        "is not the fixture: it has content_sha256",
    ),
    "HTTP, endless reply": (
        lambda tmp, made: http_store(tmp, made, "endless"),
        "bytes, more than an NPZ of the sidecar's arrays can be",
    ),
    "S3, no entry": (lambda tmp, made: s3_store(tmp, made, "missing"), "is not in the store"),
    "S3, another fixture's bytes": (
        lambda tmp, made: s3_store(tmp, made, "other"),
        "is not the fixture: it has content_sha256",
    ),
    "S3, endpoint refuses connections": (
        lambda tmp, made: s3_store(tmp, made, "unreachable"),
        "could not be fetched: ",
    ),
    "S3, endpoint never answers": (
        lambda tmp, made: s3_store(tmp, made, "silent"),
        "could not be fetched: ",
    ),
    "HTTP, connection refused": (
        lambda tmp, made: closed_port(),
        "could not be fetched: the store is unreachable (Connection refused)",
    ),
    "HTTP, no answer": (
        lambda tmp, made: never_answers(),
        "no answer within 0.5 s (ptycho_fixture_store_timeout)",
    ),
    "HTTP, a reply that is not HTTP": (
        lambda tmp, made: http_store(tmp, made, "not-http"),
        "could not be fetched: ",
    ),
    "HTTP, headers that never end": (
        lambda tmp, made: http_store(tmp, made, "endless-headers"),
        "could not be fetched: ",
    ),
}
@pytest.mark.parametrize("fault", FAULTS)
def test_a_store_fault_falls_back_to_generating_and_says_why(
    tmp_path: Path, made: Made, fault: str
) -> None:
    make, words = FAULTS[fault]
    spec = committed_spec(tmp_path / "project", made, made.source)
    with make(tmp_path, made) as url:
        cache = FixtureCache(store=url, store_timeout=0.5, root=tmp_path)
        cache.get(spec)
    assert load_npz(spec.path).content_sha256 == made.digest
    assert len(cache.stats.generations) == 1 and cache.stats.fetches == []
    (note,) = cache.stats.store_notes
    assert note.startswith("project/scan.npz was generated from ")
    assert (
        f"the store had no verified copy ({store_label(tmp_path, url)}: {made.digest}.npz " in note
    )
    assert words in note, note
    assert leftovers(spec.path.parent) == []


@pytest.mark.parametrize("fault", FAULTS)
def test_a_store_fault_in_offline_mode_fails_with_one_line_and_writes_nothing(
    tmp_path: Path, made: Made, fault: str
) -> None:
    make, words = FAULTS[fault]
    spec = committed_spec(tmp_path / "project", made, made.source)
    with make(tmp_path, made) as url:
        cache = FixtureCache(store=url, store_timeout=0.5, offline=True, root=tmp_path)
        with pytest.raises(messages.Offline) as raised:
            cache.get(spec)
    line = str(raised.value)
    assert "\n" not in line and words in line, line
    assert line.startswith("ptycho-fixture: offline mode: project/scan.npz does not exist,")
    assert f"the store {store_label(tmp_path, url)} has no verified copy of content_sha256" in line
    assert made.digest in line
    assert "nothing is generated in offline mode" in line
    assert cache.stats.generations == []
    assert sorted(entry.name for entry in spec.path.parent.iterdir()) == [
        "scan.json",
        "scan.npz.lock",
    ]


def test_a_store_that_never_answers_is_given_up_after_its_timeout(
    tmp_path: Path, made: Made
) -> None:
    # The default timeout is 30 s: a run that ignored the option would take that long.
    spec = committed_spec(tmp_path / "project", made, made.source)
    with never_answers() as url:
        started = time.monotonic()
        FixtureCache(store=url, store_timeout=0.5).get(spec)
        assert time.monotonic() - started < 20


def test_a_silent_s3_endpoint_is_asked_once_per_request_not_retried(
    tmp_path: Path, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = committed_spec(tmp_path / "project", made, made.source)
    with silent_socket() as silent:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "t")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "t")
        monkeypatch.setenv("AWS_ENDPOINT_URL", silent.url)
        cache = FixtureCache(store="s3://fixtures/ci", store_timeout=0.5, root=tmp_path)
        cache.get(spec)
        asked = silent.connections()
    assert len(cache.stats.generations) == 1
    # Retried, a request is asked five times over (s3fs's own retries).
    assert 1 <= asked <= 2, asked


def test_an_https_store_is_fetched_only_with_a_certificate_the_machine_trusts(
    tmp_path: Path, made: Made, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = tmp_path / "served"
    put(served, made)
    tls = self_signed_certificate(tmp_path)
    with HttpStoreServer(served, tls=tls) as server:
        assert server.url.startswith("https://127.0.0.1:")
        untrusted = committed_spec(tmp_path / "untrusted", made, made.source)
        refused = FixtureCache(store=server.url, root=tmp_path)
        refused.get(untrusted)
        assert refused.stats.fetches == [] and len(refused.stats.generations) == 1
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stats.store_notes[0]
        # The machine's trust store, as OpenSSL reads it: here, that one certificate.
        monkeypatch.setenv("SSL_CERT_FILE", str(tls[0]))
        trusted = committed_spec(tmp_path / "trusted", made, None)
        cache = FixtureCache(store=server.url, root=tmp_path)
        cache.get(trusted)
        assert cache.stats.generations == [] and len(cache.stats.fetches) == 1
    assert load_npz(trusted.path).content_sha256 == made.digest
    # The refused handshake never reached HTTP: one request in all.
    assert server.entry_requests() == [f"/{made.digest}.npz"]


@pytest.mark.parametrize("mode", ["redirect", "chunked"])
def test_a_redirect_or_a_chunked_reply_is_fetched(tmp_path: Path, made: Made, mode: str) -> None:
    served = tmp_path / "served"
    put(served, made)
    spec = committed_spec(tmp_path / "project", made, None)
    with HttpStoreServer(served, mode) as server:
        cache = FixtureCache(store=server.url, root=tmp_path)
        cache.get(spec)
    assert cache.stats.generations == [] and len(cache.stats.fetches) == 1
    assert load_npz(spec.path).content_sha256 == made.digest
    entry = f"/{made.digest}.npz"
    moved = [f"/moved{entry}"] if mode == "redirect" else []
    assert server.entry_requests() == [entry, *moved]


# -- malformed replies: each is a StoreFault, never an exception that escapes ---------

#: Status lines: a good one, other statuses, and lines that are not HTTP.
_STATUS = st.one_of(
    st.just(b"HTTP/1.1 200 OK"),
    st.sampled_from(
        [
            b"HTTP/1.0 200 OK",
            b"HTTP/1.1 200",
            b"HTTP/1.1 404 Not Found",
            b"HTTP/1.1 500 Internal Server Error",
            b"HTTP/1.1 301 Moved Permanently",
            b"HTTP/1.1 204 No Content",
            b"HTTP/1.1 100 Continue",
            b"HTTP/1.1 2OO OK",
            b"HTTP/2 200",
            b"ICY 200 OK",
            b"SSH-2.0-OpenSSH_9.2",
            b"",
        ]
    ),
    st.binary(max_size=40).filter(lambda line: b"\n" not in line),
)
#: Content-Length values that are not a plain count of the bytes sent.
_ODD_LENGTHS = st.sampled_from(
    ["\u00b2", "\u0661\u0662", "1_000", "+5", "-1", "", " ", "0x10", "1e3", "9" * 30, "12 12"]
)
#: Header lines besides the length: well formed, odd, or not headers at all.
_HEADER = st.one_of(
    st.sampled_from(
        [
            b"Content-Type: application/octet-stream",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip",
            b"Connection: keep-alive",
            b"Location: /elsewhere",
            b"no colon here",
            b": no name",
            b"X-Long: " + b"x" * 70_000,
        ]
    ),
    st.binary(max_size=30).filter(lambda line: b"\n" not in line),
)


@st.composite
def _replies(draw: st.DrawFn, whole: bytes) -> bytes:
    """A reply to a GET of the fixture: status line, headers, then a body that is the
    fixture, part of it, more than it, or other bytes, with a length that may lie."""
    body = draw(
        st.one_of(
            st.just(whole),
            st.integers(0, len(whole) - 1).map(lambda size: whole[:size]),
            st.binary(min_size=1, max_size=64).map(lambda extra: whole + extra),
            st.binary(max_size=2048),
        )
    )
    lengths = draw(
        st.lists(
            st.one_of(
                st.just(str(len(body))),
                st.integers(-3, 3).map(lambda off: str(max(0, len(body) + off))),
                st.just(str(len(whole))),
                _ODD_LENGTHS,
                st.text(max_size=6),
            ),
            max_size=2,
        )
    )
    headers = [f"Content-Length: {value}".encode() for value in lengths]
    headers += draw(st.lists(_HEADER, max_size=3))
    order = draw(st.permutations(headers))
    return b"\r\n".join([draw(_STATUS), *order]) + b"\r\n\r\n" + body


def _is_the_fixture(digest: str) -> Callable[[Path], str | None]:
    def check(temp: Path) -> str | None:
        try:
            loaded = load_npz(temp)
        except Exception as exc:  # noqa: BLE001 - any refusal: it is not the fixture
            return f"cannot be read ({type(exc).__name__})"
        return None if loaded.content_sha256 == digest else "has other content"

    return check


#: A length of U+00B2 (as a header carries it, in ISO-8859-1), which ``str.isdigit()``
#: takes and ``int()`` refuses.
_SQUARED = b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@example(data=None)
def test_a_malformed_reply_is_a_store_fault_and_leaves_nothing_behind(
    made: Made, data: st.DataObject | None
) -> None:
    whole = made.fixture.read_bytes()
    reply = _SQUARED + whole if data is None else data.draw(_replies(whole), label="reply")
    with tempfile.TemporaryDirectory() as folder, RawReplyServer(reply) as server:
        target = Path(folder) / "scan.npz"
        store = open_store(server.url, timeout=2)
        reason = None
        try:
            store.fetch(made.digest, target, _is_the_fixture(made.digest), len(whole) + (1 << 20))
        except StoreFault as fault:
            assert fault.entry == entry_name(made.digest) and "\n" not in str(fault)
            assert not target.exists()
            reason = fault.reason
        else:
            assert load_npz(target).content_sha256 == made.digest
        assert leftovers(Path(folder)) == []
    if data is None:
        assert reason == "could not be fetched: its Content-Length is '\u00b2', not a number of bytes"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@example(data=None)
def test_after_a_malformed_reply_the_cache_falls_back_to_generating(
    made: Made, data: st.DataObject | None
) -> None:
    whole = made.fixture.read_bytes()
    reply = _SQUARED + whole if data is None else data.draw(_replies(whole), label="reply")
    with tempfile.TemporaryDirectory() as folder, RawReplyServer(reply) as server:
        spec = committed_spec(Path(folder) / "project", made, made.source)
        cache = FixtureCache(store=server.url, store_timeout=2, root=Path(folder))
        verified = cache.get(spec)
        assert verified.metadata["content_sha256"] == made.digest
        assert load_npz(spec.path).content_sha256 == made.digest
        generated, fetched = len(cache.stats.generations), len(cache.stats.fetches)
        assert (generated, fetched) in ((1, 0), (0, 1))
        notes = cache.stats.store_notes
        assert len(notes) == generated
        assert all("the store had no verified copy" in note and "\n" not in note for note in notes)
        assert leftovers(spec.path.parent) == []
    if data is None:
        assert generated == 1 and "Content-Length is '\u00b2'" in notes[0]


def test_a_run_whose_http_store_sends_a_length_of_squared_generates_and_says_why(
    tmp_path: Path, made: Made
) -> None:
    with RawReplyServer(_SQUARED + made.fixture.read_bytes()) as server:
        b = project(tmp_path / "b", server.url, source=made.source)
        (b / SIDECAR).parent.mkdir(parents=True)
        shutil.copyfile(made.sidecar, b / SIDECAR)
        result = pytest_run(b)
    assert result.returncode == 0 and result.passed == TESTS, result.describe()
    assert result.generations == 1 and server.requests == 1
    assert "its Content-Length is '\u00b2', not a number of bytes" in result.output


def test_offline_mode_without_a_store_names_the_option(tmp_path: Path, made: Made) -> None:
    spec = committed_spec(tmp_path / "project", made, made.source)
    with pytest.raises(messages.Offline) as raised:
        FixtureCache(offline=True, root=tmp_path).get(spec)
    assert "no store is configured (ptycho_fixture_store / --ptycho-fixture-store)" in str(
        raised.value
    )
    assert not spec.path.exists()


def test_a_missing_source_and_a_store_without_the_entry_are_both_named(
    tmp_path: Path, made: Made
) -> None:
    spec = committed_spec(tmp_path / "project", made, tmp_path / "absent.npz")
    (tmp_path / "store").mkdir()
    with pytest.raises(messages.SourceMissing) as raised:
        FixtureCache(store=str(tmp_path / "store"), root=tmp_path).get(spec)
    assert "its source absent.npz does not exist, and the store had no verified copy (store:" in (
        str(raised.value)
    )


def test_a_run_that_generated_pushes_when_asked(tmp_path: Path, made: Made) -> None:
    store = tmp_path / "store"
    spec = committed_spec(tmp_path / "project", made, made.source)
    cache = FixtureCache(store=str(store), store_push=True, root=tmp_path)
    cache.get(spec)
    assert load_npz(store / entry_name(made.digest)).content_sha256 == made.digest
    assert cache.stats.store_notes[-1] == (
        f"pushed project/scan.npz to store as {entry_name(made.digest)}"
    )
    assert leftovers(store) == []


def test_a_push_that_fails_is_noted_and_the_fixture_is_still_provided(
    tmp_path: Path, made: Made
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be\n")
    spec = committed_spec(tmp_path / "project", made, made.source)
    cache = FixtureCache(store=str(blocker / "store"), store_push=True, root=tmp_path)
    assert cache.get(spec).metadata["content_sha256"] == made.digest
    note = cache.stats.store_notes[-1]
    assert note.startswith(
        f"could not push project/scan.npz: not-a-folder/store: {made.digest}.npz could not be"
        " pushed: "
    )
    assert note.endswith("; nothing was published under that name")


# -- the push command ----------------------------------------------------------------


def test_push_uploads_a_verified_fixture_once(tmp_path: Path, made: Made) -> None:
    store = tmp_path / "new" / "store"
    first = run_cli("push", made.fixture, "--store", f"file://{store}")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == (
        f"pushed {made.fixture} to file://{store} as {made.digest}.npz"
    )
    assert (store / entry_name(made.digest)).read_bytes() == made.fixture.read_bytes()
    again = run_cli("push", made.fixture, "--store", str(store))
    assert again.returncode == 0, again.stderr
    assert "holds " + entry_name(made.digest) + " already, the same bytes" in again.stdout
    assert leftovers(store) == []


def test_push_replaces_an_entry_that_holds_other_bytes(tmp_path: Path, made: Made) -> None:
    store = tmp_path / "store"
    put(store, made, damage=True)
    result = run_cli("push", made.fixture, "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert (store / entry_name(made.digest)).read_bytes() == made.fixture.read_bytes()


def test_push_refuses_a_fixture_that_does_not_match_its_sidecar(tmp_path: Path, made: Made) -> None:
    fixture = tmp_path / "f.npz"
    shutil.copyfile(made.other, fixture)
    shutil.copyfile(made.sidecar, tmp_path / "f.json")
    result = run_cli("push", fixture, "--store", tmp_path / "store")
    assert result.returncode == 1
    assert result.stderr.startswith(f"MISMATCH {fixture}: content_sha256 expected {made.digest}")
    assert result.stderr.rstrip().endswith("; nothing was pushed")
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("store", "words"),
    [
        ("https://127.0.0.1:9/fx", "cannot be pushed: an HTTP store is read-only"),
        ("ht tp://x", "--store: 'ht tp://x' is not a store URL"),
        ("nosuchprotocol://x/y", "nosuchprotocol://x/y cannot be used: it"),
    ],
)
def test_push_refuses_a_store_it_cannot_write_with_one_line(
    made: Made, store: str, words: str
) -> None:
    line = one_error_line(run_cli("push", made.fixture, "--store", store))
    assert words in line, line


@needs_permissions
def test_push_to_a_read_only_store_fails_with_one_line_and_leaves_nothing(
    tmp_path: Path, made: Made
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o555)
    try:
        result = run_cli("push", made.fixture, "--store", store, unprivileged=True)
    finally:
        store.chmod(0o755)
    line = one_error_line(result)
    assert f"{store}: {made.digest}.npz could not be pushed: PermissionError" in line, line
    assert list(store.iterdir()) == []


def _file_size_limit() -> None:
    # The kernel refuses writes past 100 kB with EFBIG (SIGXFSZ ignored, so not a kill).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


def test_a_push_whose_writes_fail_midway_publishes_nothing(tmp_path: Path, made: Made) -> None:
    store = tmp_path / "store"
    store.mkdir()
    result = run_cli("push", made.fixture, "--store", store, preexec_fn=_file_size_limit)
    line = one_error_line(result)
    assert f"{made.digest}.npz could not be pushed: OSError: [Errno 27] File too large" in line
    assert list(store.iterdir()) == []


def test_concurrent_pushes_of_one_digest_all_succeed_and_the_entry_is_always_whole(
    tmp_path: Path, made: Made
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    entry = store / entry_name(made.digest)
    whole = made.fixture.read_bytes()

    def complete(path: Path) -> str | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return None if data == whole else f"{len(data)} bytes, not the fixture's {len(whole)}"

    argv = [*cli_command(), "push", str(made.fixture), "--store", str(store)]
    with Watcher(entry, complete) as watcher:
        done = finish([start(argv, tmp_path) for _ in range(6)])
    for result in done:
        assert result.returncode == 0, result.describe()
    assert watcher.problems == [] and watcher.versions
    assert entry.read_bytes() == whole and leftovers(store) == []


# -- the plugin: project A pushes, project B fetches -----------------------------------


def project(folder: Path, store: str, *, push: bool = False, source: Path | None = None) -> Path:
    """A project whose fixture is committed at tests/fixtures/scan.npz, made from
    data/scan.npz (which only project A has)."""
    (folder / "tests").mkdir(parents=True, exist_ok=True)
    (folder / "tests" / "test_scan.py").write_text(USES_ARRAYS, encoding="utf-8")
    (folder / "pytest.ini").write_text(
        "[pytest]\n"
        f"ptycho_fixture_path = {FIXTURE}\n"
        "ptycho_fixture_source = data/scan.npz\n"
        f"ptycho_fixture_store = {store}\n"
        f"ptycho_fixture_store_push = {'true' if push else 'false'}\n"
        "ptycho_fixture_store_timeout = 5\n",
        encoding="utf-8",
    )
    if source is not None:
        (folder / "data").mkdir(exist_ok=True)
        shutil.copyfile(source, folder / "data" / "scan.npz")
    return folder


def fresh_clone(a: Path, b: Path, store: str) -> Path:
    """Project B: A's tests and committed sidecar only, with its own store URL."""
    project(b, store)
    (b / SIDECAR).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(a / SIDECAR, b / SIDECAR)
    return b


def pytest_run(folder: Path, *args: str, **env: str) -> Finished:
    return run(pytest_argv("-W", "error", *args), folder, env=environment(**env))


def fetched(result: Finished) -> list[str]:
    return [line for line in result.output.splitlines() if "fetched from" in line]


STORES = ["folder", "http", "s3"]


@contextlib.contextmanager
def shared_store(kind: str, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str], list[str]]]:
    """``(url A pushes to, url B fetches from, environment, entry requests so far)``."""
    folder = tmp_path / "store"
    folder.mkdir()
    if kind == "folder":
        yield f"file://{folder}", f"file://{folder}", {}, []
    elif kind == "http":
        with HttpStoreServer(folder) as server:
            yield str(folder), server.url, {}, server.requests
    else:
        with s3_server() as env:
            yield "s3://fixtures/ci", "s3://fixtures/ci", env, []


@pytest.mark.parametrize("kind", STORES)
def test_project_b_with_only_the_sidecar_fetches_what_project_a_generated_and_pushed(
    tmp_path: Path, made: Made, kind: str
) -> None:
    with shared_store(kind, tmp_path) as (push_url, fetch_url, env, requests):
        a = project(tmp_path / "a", push_url, push=True, source=made.source)
        made_a = pytest_run(a, "--regen-fixture", **env)
        assert made_a.returncode == 0 and made_a.generations == 1, made_a.describe()
        assert "ptycho-fixture: pushed tests/fixtures/scan.npz to " in made_a.output
        again = run(
            [*cli_command(), "push", str(FIXTURE), "--store", push_url], a, env=environment(**env)
        )
        assert again.returncode == 0, again.describe()
        assert f"holds {entry_name(load_npz(a / FIXTURE).content_sha256)} already" in again.output

        b = fresh_clone(a, tmp_path / "b", fetch_url)
        cold = pytest_run(b, **env)
        assert cold.returncode == 0 and cold.passed == TESTS, cold.describe()
        assert cold.generations == 0
        assert fetched(cold) and "fetched from " + store_label(b, fetch_url) in cold.output

        before = len(requests)
        warm = pytest_run(b, **env)
        assert warm.returncode == 0 and warm.generations == 0 and not fetched(warm)
        assert len(requests) == before  # a fixture that verifies: the store is not asked

        (b / FIXTURE).unlink()
        before = len([path for path in requests if path.endswith(".npz")])
        xdist = pytest_run(b, "-n", "4", **env)
        assert xdist.returncode == 0 and xdist.passed == TESTS, xdist.describe()
        assert xdist.generations == 0
        assert "(1 file: gw" in fetched(xdist)[0], xdist.describe()
        if kind == "http":
            assert len([path for path in requests if path.endswith(".npz")]) == before + 1
        assert leftovers(b / FIXTURE.parent) == []


def test_a_named_set_is_pushed_and_fetched_like_the_main_fixture(
    tmp_path: Path, made: Made
) -> None:
    store = f"file://{tmp_path / 'store'}"
    uses_set = (
        "def test_uses_the_set(ptycho_sets):\n"
        "    assert ptycho_sets['small'].arrays['diffraction'].shape == (32, 64, 64)\n"
    )
    sets = "ptycho_fixture_sets = small subset_size=32\n"
    a = project(tmp_path / "a", store, push=True, source=made.source)
    with (a / "pytest.ini").open("a", encoding="utf-8") as ini:
        ini.write(sets)
    (a / "tests" / "test_set.py").write_text(uses_set, encoding="utf-8")
    made_a = pytest_run(a, "--regen-fixture")
    assert made_a.returncode == 0 and made_a.generations == 2, made_a.describe()
    assert made_a.output.count("ptycho-fixture: pushed tests/fixtures/") == 2
    b = fresh_clone(a, tmp_path / "b", store)
    shutil.copyfile(a / "tests/fixtures/small.json", b / "tests/fixtures/small.json")
    with (b / "pytest.ini").open("a", encoding="utf-8") as ini:
        ini.write(sets)
    (b / "tests" / "test_set.py").write_text(uses_set, encoding="utf-8")
    cold = pytest_run(b)
    assert cold.returncode == 0 and cold.passed == TESTS + 1, cold.describe()
    assert cold.generations == 0 and "(2 files: main, " in fetched(cold)[0], cold.describe()


def test_concurrent_cold_runs_fetch_once_per_machine(tmp_path: Path, made: Made) -> None:
    served = tmp_path / "served"
    put(served, made)
    b = project(tmp_path / "b", "http://127.0.0.1:9")
    (b / SIDECAR).parent.mkdir(parents=True)
    shutil.copyfile(made.sidecar, b / SIDECAR)
    with HttpStoreServer(served) as server:
        argv = pytest_argv("-W", "error", "-n", "2", "-o", f"ptycho_fixture_store={server.url}")
        done = finish([start(argv, b) for _ in range(3)])
        for result in done:
            assert result.returncode == 0 and result.passed == TESTS, result.describe()
            assert result.generations == 0
        assert sum(len(fetched(result)) for result in done) == 1
        assert server.entry_requests() == [f"/{made.digest}.npz"]


def test_offline_mode_fetches_and_never_generates_even_with_the_source_there(
    tmp_path: Path, made: Made
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    a = project(tmp_path / "a", str(store), source=made.source)
    (a / SIDECAR).parent.mkdir(parents=True)
    shutil.copyfile(made.sidecar, a / SIDECAR)
    refused = pytest_run(a, PTYCHO_FIXTURE_OFFLINE="1")
    assert refused.returncode == 1 and refused.generations == 0, refused.describe()
    assert (
        f"ptycho-fixture: offline mode: {FIXTURE} does not exist, and the store {store}"
        f" has no verified copy of content_sha256 {made.digest} ({made.digest}.npz is not in"
        " the store)"
    ) in refused.output
    assert not (a / FIXTURE).exists()
    put(store, made)
    fetched_run = pytest_run(a, "--ptycho-fixture-offline")
    assert fetched_run.returncode == 0 and fetched_run.generations == 0, fetched_run.describe()
    assert fetched(fetched_run)
    assert f"ptycho-fixture: store {store}, offline: nothing is generated" in fetched_run.output


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (
            ["--regen-fixture", "--ptycho-fixture-offline"],
            {},
            "ERROR: --regen-fixture generates, and offline mode",
        ),
        (
            [],
            {"PTYCHO_FIXTURE_OFFLINE": "maybe"},
            "PTYCHO_FIXTURE_OFFLINE: 'maybe' is not a switch",
        ),
        (
            ["--ptycho-fixture-store=ht tp://x"],
            {},
            "ERROR: --ptycho-fixture-store: 'ht tp://x' is not a store URL",
        ),
        (
            [
                "-o",
                "ptycho_fixture_store=https://127.0.0.1:9/fx",
                "-o",
                "ptycho_fixture_store_push=true",
            ],
            {},
            "is read-only over HTTP",
        ),
        (
            ["-o", "ptycho_fixture_store_timeout=0"],
            {},
            "ptycho_fixture_store_timeout in pytest.ini: '0' is not a store timeout",
        ),
    ],
)
def test_a_store_setting_that_cannot_work_is_a_usage_error(
    tmp_path: Path, made: Made, args: list[str], env: dict[str, str], words: str
) -> None:
    a = project(tmp_path / "a", str(tmp_path / "store"), source=made.source)
    result = pytest_run(a, *args, **env)
    assert result.returncode == 4, result.describe()
    assert words in result.output, result.describe()


@pytest.mark.parametrize(
    ("blocked", "store", "words"),
    [
        (
            "fsspec",
            "STORE",
            "cannot be used: it needs fsspec: pip install 'pytest-ptycho-fixture[remote]'",
        ),
        (
            "s3fs",
            "s3://fixtures/ci",
            "cannot be used: it needs s3fs: pip install 'pytest-ptycho-fixture[s3]'",
        ),
    ],
)
def test_a_store_whose_package_is_missing_says_which_extra_to_install(
    tmp_path: Path, made: Made, blocked: str, store: str, words: str
) -> None:
    store = store.replace("STORE", str(tmp_path / "store"))
    program = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        "from pytest_ptycho_fixture.cli import run; run()"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, "push", str(made.fixture), "--store", store],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = one_error_line(result)
    assert line == f"ptycho-fixture: error: {store} {words}", line
