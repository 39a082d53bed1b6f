"""Hostile and malformed sources met by the pytest plugin: the same table of bad sources the
generator and the command line refuse (tests/helpers.py), refused with one line per test
and nothing written but the lock file."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import (
    BAD_SOURCES,
    Bad,
    folder_entries,
    needs_permissions,
    permissions,
    pickled_member,
    run_cli,
    source_members,
    write_source,
    write_zip,
)
from processes import PYTEST, USES_THE_FIXTURE

from pytest_ptycho_fixture.cache import FixtureCache
from pytest_ptycho_fixture.messages import FixtureError
from pytest_ptycho_fixture.spec import cached_spec

#: The cache is asked with no layout (an ambiguous source is still refused, naming the
#: options) and reads only what the fixture needs, never verifying a whole source.
THROUGH_THE_PLUGIN = [
    bad
    for bad in BAD_SOURCES
    if "layout" not in bad.kwargs and "keys" not in bad.kwargs and not bad.kwargs.get("verify_source")
]


@pytest.mark.parametrize("bad", THROUGH_THE_PLUGIN, ids=str)
def test_the_plugin_refuses_a_bad_source_with_one_line_and_writes_nothing(
    bad: Bad, tmp_path: Path
) -> None:
    source = bad.build(tmp_path)
    folder = tmp_path / "cache"
    spec = cached_spec(folder, source, bad.kwargs.get("subset_size", 64), "stratified")
    fixtures = FixtureCache(root=tmp_path)
    with pytest.raises(FixtureError) as caught:
        fixtures.get(spec)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("ptycho-fixture: ")
    assert source.name in message
    for fragment in bad.says:
        assert fragment in message, message
    assert folder_entries(folder) == [spec.lock_path.name]
    assert not (tmp_path / "unpickled-marker").exists()


def test_a_run_with_a_pickled_source_fails_each_test_and_never_unpickles(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -W error")
    marker = pytester.path / "unpickled"
    members = source_members()
    members["probeGuess.npy"] = pickled_member(marker)
    write_zip(pytester.path / "source.npz", members)
    pytester.makeini("[pytest]\nptycho_fixture_source = source.npz\n")
    pytester.makepyfile(USES_THE_FIXTURE.format(n=2))
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            (
                "ptycho-fixture: cannot generate .pytest_cache/d/ptycho-fixture/minimal_dataset_v1-*"
                ".npz from source.npz: 'probeGuess' holds Python objects (dtype object)"
                " but a numeric array is required; pickled arrays are never loaded"
            )
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert not marker.exists()


@needs_permissions
def test_a_run_with_a_source_it_may_not_read_fails_each_test_with_one_line(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "source.npz")
    (tmp_path / "pytest.ini").write_text("[pytest]\nptycho_fixture_source = source.npz\n")
    (tmp_path / "test_fixture.py").write_text(USES_THE_FIXTURE.format(n=2))
    with permissions(source, 0o000):
        result = run_cli(cwd=tmp_path, unprivileged=True, command=[*PYTEST, "-W", "error"])
    assert result.returncode == 1 and "Traceback" not in result.stdout, result.stdout
    assert result.stdout.count("source.npz: cannot be read (permission denied)") == 2
    folder = tmp_path / ".pytest_cache" / "d" / "ptycho-fixture"
    assert [name for name in folder_entries(folder) if not name.endswith(".lock")] == []
