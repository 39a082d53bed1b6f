"""Filesystem hazards: symlinks planted at the fixture, its lock and its temporary files, a
read-only cache folder, and a disk that fills up while the fixture is written."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from helpers import folder_entries, needs_permissions, one_error_line, permissions
from processes import (
    CACHED,
    TIMEOUT,
    content_digest,
    drop_permission_override,
    environment,
    generate_argv,
    project,
    pytest_argv,
    run,
    shipped_digest,
    temporary_files,
)

from pytest_ptycho_fixture.cache import FixtureCache
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.messages import FixtureError
from pytest_ptycho_fixture.spec import FixtureSpec, main_spec

PRECIOUS = b"someone else's data, never to be truncated or overwritten\n"


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    """A file outside the cache that a planted symlink points at."""
    path = tmp_path / "elsewhere" / "precious.dat"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


def _untouched(path: Path, stat: os.stat_result) -> bool:
    after = path.stat()
    return path.read_bytes() == PRECIOUS and after.st_mtime_ns == stat.st_mtime_ns


def _cache(tmp_path: Path) -> tuple[FixtureCache, FixtureSpec]:
    """The zero-configuration fixture in an empty cache folder, and a cache to get it."""
    folder = tmp_path / "cache"
    folder.mkdir()
    spec = main_spec(
        path=None, sidecar=None, source=None, subset_size=64, strategy="stratified", folder=folder
    )
    return FixtureCache(root=tmp_path, lock_timeout=10), spec


def _cli(argv: list[str], preexec_fn: Callable[[], None] | None = None) -> CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=environment(),
        preexec_fn=preexec_fn,
    )


# ----------------------------------------------------------------------------- symlinks


def test_a_symlink_planted_at_the_fixture_path_is_replaced_and_its_target_untouched(
    tmp_path: Path, precious: Path
) -> None:
    fixtures, spec = _cache(tmp_path)
    fixture = spec.path
    fixture.symlink_to(precious)
    before = precious.stat()
    fixtures.get(spec)
    assert not fixture.is_symlink() and content_digest(fixture) == shipped_digest()
    assert _untouched(precious, before)
    assert len(fixtures.stats.healed) == 1


def test_a_symlink_at_the_fixture_path_to_a_valid_fixture_is_only_read(tmp_path: Path) -> None:
    fixtures, spec = _cache(tmp_path)
    elsewhere = generate_fixture(None, tmp_path / "shared.npz").output_path
    data = elsewhere.read_bytes()
    spec.path.symlink_to(elsewhere)
    fixtures.get(spec)
    assert spec.path.is_symlink() and elsewhere.read_bytes() == data
    assert fixtures.stats.generations == []


def test_generate_replaces_a_symlink_at_its_output_and_leaves_the_target(
    tmp_path: Path, precious: Path
) -> None:
    output = tmp_path / "out" / "minimal_dataset_v1.npz"
    output.parent.mkdir()
    output.symlink_to(precious)
    before = precious.stat()
    result = _cli(generate_argv(output))
    assert result.returncode == 0, result.stderr
    assert not output.is_symlink() and content_digest(output) == shipped_digest()
    assert _untouched(precious, before)


@pytest.mark.parametrize("dangling", [False, True], ids=["to a file", "dangling"])
def test_a_symlink_planted_at_the_lock_path_is_refused_and_its_target_untouched(
    tmp_path: Path, precious: Path, dangling: bool
) -> None:
    fixtures, spec = _cache(tmp_path)
    fixture, lock = spec.path, spec.lock_path
    target = precious.with_name("not-yet.dat") if dangling else precious
    lock.symlink_to(target)
    before = precious.stat()
    with pytest.raises(FixtureError) as caught:
        fixtures.get(spec)
    assert str(caught.value) == (
        f"ptycho-fixture: cannot take the lock {lock}: is a symbolic link to {target}, not a"
        " lock file; it was left as it is: remove it"
    )
    assert _untouched(precious, before)
    assert target.exists() is not dangling
    assert folder_entries(fixture.parent) == [lock.name]
    line = one_error_line(_cli(generate_argv(fixture)))
    assert line == (
        f"ptycho-fixture: error: {fixture}: cannot take its lock: {lock}: is a symbolic link"
        f" to {target}, not a lock file; it was left as it is: remove it"
    )
    assert _untouched(precious, before)
    assert folder_entries(fixture.parent) == [lock.name]


def test_a_symlink_named_like_a_stale_temporary_file_is_removed_not_followed(
    tmp_path: Path, precious: Path
) -> None:
    fixtures, spec = _cache(tmp_path)
    planted = spec.path.with_name(f".{spec.path.name}.pl4nt3d.tmp")
    planted.symlink_to(precious)
    before = precious.stat()
    fixtures.get(spec)
    assert not planted.is_symlink() and temporary_files(spec.path.parent) == []
    assert _untouched(precious, before)


# ----------------------------------------------------------------- a read-only cache folder



@needs_permissions
@pytest.mark.parametrize("state", ["cold", "warm", "damaged"])
def test_a_read_only_cache_folder_gives_a_clear_error_or_a_verified_fixture(
    tmp_path: Path, state: str
) -> None:
    root = project(tmp_path)
    fixture = root / CACHED
    if state != "cold":
        generate_fixture(None, fixture).metadata_path.unlink()
    if state == "damaged":
        fixture.write_bytes(fixture.read_bytes()[:1000])
    entries = folder_entries(fixture.parent)
    data = fixture.read_bytes() if state != "cold" else None
    with permissions(fixture.parent, 0o555):
        result = run(pytest_argv("-W", "error"), root, preexec_fn=drop_permission_override)
    assert "Traceback" not in result.output and "INTERNALERROR" not in result.output
    folder = ".pytest_cache/d/ptycho-fixture"
    if state == "warm":
        assert result.returncode == 0 and result.passed == 2, result.describe()
        assert result.generations == 0
    else:
        fixture_shown = f"{folder}/minimal_dataset_v1.npz"
        lines = [
            line
            for line in result.output.splitlines()
            if line.startswith(f"ptycho-fixture: {fixture_shown} ")
        ]
        assert len(lines) == 2, result.describe()
        problem = "does not exist" if state == "cold" else "was damaged (is not a readable NPZ"
        assert lines[0].startswith(f"ptycho-fixture: {fixture_shown} {problem}")
        assert lines[0].endswith(
            f", and it cannot be generated or healed: the folder {folder} is not writable (its"
            " lock file minimal_dataset_v1.npz.lock cannot be created: Permission denied);"
            f" make {folder} writable, or point ptycho_fixture_path (or -o cache_dir=...) at a"
            " writable place"
        ), result.describe()
    assert folder_entries(fixture.parent) == entries
    assert data is None or fixture.read_bytes() == data


# ----------------------------------------------------------------------- a full disk

LIMIT = 256 << 10


def _file_size_limit() -> None:
    # In the child: files may not grow past LIMIT, and a write past it fails with EFBIG
    # instead of killing the process.
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_generate_on_a_full_disk_says_so_and_leaves_only_the_lock_file(tmp_path: Path) -> None:
    output = tmp_path / "out" / "minimal_dataset_v1.npz"
    output.parent.mkdir()
    line = one_error_line(_cli(generate_argv(output), _file_size_limit))
    assert line == f"ptycho-fixture: error: {output}: cannot write it: File too large"
    assert folder_entries(output.parent) == [f"{output.name}.lock"]


@pytest.mark.parametrize("state", ["cold", "damaged"])
def test_a_run_on_a_full_disk_fails_each_test_with_one_line_and_writes_nothing(
    tmp_path: Path, state: str
) -> None:
    root = project(tmp_path)
    fixture = root / CACHED
    damaged = b"PK\x03\x04 half of an npz"
    if state == "damaged":
        fixture.write_bytes(damaged)
    result = run(pytest_argv("-W", "error"), root, preexec_fn=_file_size_limit)
    assert result.returncode == 1 and "Traceback" not in result.output, result.describe()
    message = (
        f"ptycho-fixture: cannot generate {CACHED}: cannot write it: File too large;"
        " nothing was written"
    )
    assert result.output.count(message) == 2, result.describe()
    assert temporary_files(fixture.parent) == []
    if state == "damaged":
        assert fixture.read_bytes() == damaged
    else:
        assert not fixture.exists()
