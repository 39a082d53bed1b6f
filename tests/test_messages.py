"""The cache's typed errors, the run record, and the protocol without pytest."""

from __future__ import annotations

import dataclasses
import inspect
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_ptycho_fixture import messages
from pytest_ptycho_fixture.cache import FixtureCache
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.messages import FixtureError, GeneratedMismatch
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.npz.sidecar import differing_arrays
from pytest_ptycho_fixture.runrecord import StaleRecord
from pytest_ptycho_fixture.spec import FixtureSpec

#: One of each error, with the data it carries.
ERRORS: list[FixtureError] = [
    messages.FolderUncreatable("fixtures/a", "Permission denied"),
    messages.LockTimeout("f.npz", "/x/f.npz.lock", 2.5),
    messages.NotWritable("f.npz", "fixtures", "f.npz.lock", 13),
    messages.LockFailed("/x/f.npz.lock", "is a symbolic link to /etc/passwd, not a lock file"),
    messages.Unverifiable("f.npz", messages.MISSING, "the folder fixtures is not writable"),
    messages.SidecarMissing("f.json", "f.npz"),
    messages.SidecarBroken("f.json", "is not valid JSON (line 1 column 2)"),
    messages.SourceMissing("f.npz", "data/s.npz", False, messages.MISSING),
    messages.SourceMissing("f.npz", "data", True, messages.damaged("a CRC error")),
    messages.SourceMissing("f.npz", "data/s.npz", False, None),
    messages.SourceMissing("f.npz", "data/s.npz", False, messages.MISSING, "s: d.npz is gone"),
    messages.Offline("f.npz", messages.MISSING, "s3://b/fx", "d.npz is not in the store", "d" * 64),
    messages.Offline("f.npz", messages.MISSING, None, None, "d" * 64),
    messages.Offline("f.npz", messages.MISSING, None, None, None),
    messages.SourceRefused("f.npz", "data/s.npz", "'diffraction' is complex"),
    messages.WriteFailed("f.npz", "f.npz", "No space left on device"),
    messages.WriteFailed("f.npz", "f.json", "Read-only file system"),
    messages.ReadBackFailed("f.npz", "differs from what was generated"),
    GeneratedMismatch("builtin", "f.json", "a" * 64, "b" * 64, ("diffraction (missing)",)),
    messages.ContractBroken("f.npz: 'xcoords' has non-finite values", "f.json"),
    messages.GeometryChanged("f.npz", "f.json", "none", "energy_ev=8000,distance_m=2,pixel_m=7.5e-05"),
    messages.RestoreFailed("f.npz", None),
]


def test_every_kind_of_error_is_in_the_table() -> None:
    kinds = {
        value
        for value in vars(messages).values()
        if inspect.isclass(value) and issubclass(value, FixtureError) and value is not FixtureError
    }
    assert kinds == {type(error) for error in ERRORS}


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_an_error_is_one_line_that_names_the_tool_and_its_data(error: FixtureError) -> None:
    line = str(error)
    assert line.startswith("ptycho-fixture: ") and "\n" not in line
    for field in dataclasses.fields(error):
        value = getattr(error, field.name)
        if isinstance(value, str) and field.name != "errno":
            assert value in line, field.name


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_an_error_pickles_with_its_data_and_its_line(error: FixtureError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert dataclasses.asdict(again) == dataclasses.asdict(error)
    assert str(again) == str(error)


def test_the_cache_imports_no_pytest() -> None:
    script = (
        "import sys, pytest_ptycho_fixture.cache\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_mismatch_reads_the_same_from_the_command_line_and_from_the_cache(
    tmp_path: Path,
) -> None:
    fixture = generate_fixture(None, tmp_path / "f.npz").output_path
    sidecar = json.loads(fixture.with_suffix(".json").read_text(encoding="utf-8"))
    # Another fixture's bytes under this one's sidecar.
    generate_fixture(None, tmp_path / "other.npz", 32)
    fixture.write_bytes((tmp_path / "other.npz").read_bytes())
    loaded = load_npz(fixture)
    differ = differing_arrays(sidecar, loaded.array_sha256, loaded.arrays)
    wording = messages.digest_mismatch(sidecar["content_sha256"], loaded.content_sha256, differ)
    assert "shape (32, 64, 64), the sidecar says (64, 64, 64)" in wording

    verify = subprocess.run(
        [sys.executable, "-m", "pytest_ptycho_fixture", "verify", str(fixture)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 1
    assert f"MISMATCH {fixture}: {wording}; sidecar " in verify.stderr
    # The cache heals it, and its summary says what it found.
    cache = FixtureCache()
    cache.get(FixtureSpec(fixture, fixture.with_suffix(".json")))
    problem = messages.stale(sidecar["content_sha256"], loaded.content_sha256, differ)
    assert wording in problem
    assert cache.stats.healed == [
        messages.healed(
            str(fixture), problem, "builtin:synthetic-run1084", str(fixture.with_suffix(".json"))
        )
    ]


def test_a_run_record_is_seen_by_the_same_run_only(tmp_path: Path) -> None:
    fixture = tmp_path / "f.npz"
    error = GeneratedMismatch("builtin", "f.json", "a" * 64, "b" * 64, ("x (missing)",))
    StaleRecord(tmp_path / "cache", "run-a").note(fixture, error)
    seen = StaleRecord(tmp_path / "cache", "run-a").known(fixture)
    assert isinstance(seen, GeneratedMismatch) and str(seen) == str(error)
    assert StaleRecord(tmp_path / "cache", "run-b").known(fixture) is None
    assert StaleRecord(tmp_path / "cache", "run-a").known(tmp_path / "g.npz") is None
    StaleRecord(tmp_path / "cache", "run-a").clear(fixture)
    assert StaleRecord(tmp_path / "cache", "run-a").known(fixture) is None


def test_a_run_record_it_cannot_read_means_generate_again(tmp_path: Path) -> None:
    fixture = tmp_path / "f.npz"
    record = StaleRecord(tmp_path, "run-a")
    error = GeneratedMismatch("builtin", "f.json", "a" * 64, "b" * 64, ())
    record.note(fixture, error)
    (note,) = tmp_path.glob("stale-*.json")
    for broken in ("{", '{"run": "run-a"}', '{"run": "run-a", "error": {"source": 1}}'):
        note.write_text(broken, encoding="utf-8")
        assert record.known(fixture) is None
