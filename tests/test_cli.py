"""The ``ptycho-fixture`` command line, run as a user runs it: in a new process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    BAD_SOURCES,
    Bad,
    cli_command,
    console_script,
    folder_entries,
    needs_permissions,
    one_error_line,
    permissions,
    pickled_member,
    run_cli,
    source_arrays,
    source_members,
    write_big_source,
    write_source,
    write_zip,
)
from processes import start_on_terminal

import pytest_ptycho_fixture
from pytest_ptycho_fixture.contract import validate_fixture
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.npz.writer import write_npz


@pytest.fixture
def fixture(legacy: Path, out: Path) -> Path:
    """A fixture and its sidecar, for the commands that read one."""
    return generate_fixture(legacy, out / "fixture.npz", compress=False).output_path


@pytest.fixture(scope="module")
def builtin_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in default fixture, written by the installed console script."""
    folder = tmp_path_factory.mktemp("default")
    result = run_cli("generate", "--output", folder / "X.npz", command=[console_script()])
    assert result.returncode == 0, result.stderr
    return folder / "X.npz"


def sidecar(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return data


# ------------------------------------------------------------------------ generate


def test_generate_prints_what_it_wrote_the_digests_the_coverage_and_the_time(
    legacy: Path, out: Path
) -> None:
    result = run_cli("generate", "--source", legacy, "--output", out / "fixture.npz")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data = sidecar(out / "fixture.npz")
    lines = result.stdout.splitlines()
    assert lines[0] == f"wrote {out / 'fixture.npz'}"
    assert lines[1] == f"wrote {out / 'fixture.json'}"
    assert f"content_sha256  {data['content_sha256']}" in lines
    file_digest = hashlib.sha256((out / "fixture.npz").read_bytes()).hexdigest()
    assert f"sha256_checksum {file_digest}" in lines
    cover = data["coverage"]
    assert f"coverage x {cover['x']:.1%}, y {cover['y']:.1%}" in result.stdout
    assert "64 of 100 positions (stratified)" in result.stdout
    assert re.search(r"^time +\d+\.\d\d s$", result.stdout, re.MULTILINE)
    # The lock file stays, as the pytest plugin's does: see pytest_ptycho_fixture.locking.
    assert folder_entries(out) == ["fixture.json", "fixture.npz", "fixture.npz.lock"]
    with zipfile.ZipFile(out / "fixture.npz") as archive:
        assert "diff3d.npy" in archive.namelist()
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}


def test_the_built_in_default_passes_the_contract_and_twice_in_a_row_gives_the_same_bytes(
    builtin_default: Path, tmp_path: Path
) -> None:
    notes = validate_fixture(builtin_default, load_npz(builtin_default).arrays)
    assert notes
    again = run_cli("generate", "--output", tmp_path / "Y.npz")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "Y.npz").read_bytes() == builtin_default.read_bytes()


def test_a_source_generated_in_two_processes_gives_byte_identical_files(
    legacy: Path, out: Path
) -> None:
    for name in ("a.npz", "b.npz"):
        result = run_cli("generate", "--source", legacy, "--output", out / name)
        assert result.returncode == 0, result.stderr
    assert (out / "a.npz").read_bytes() == (out / "b.npz").read_bytes()
    assert sidecar(out / "a.npz")["sha256_checksum"] == sidecar(out / "b.npz")["sha256_checksum"]


def test_no_diff3d_alias_and_no_compress_change_the_file_as_asked(
    legacy: Path, fixture: Path, out: Path
) -> None:
    plain = out / "plain.npz"
    result = run_cli(
        "generate", "--source", legacy, "--output", plain, "--no-diff3d-alias", "--no-compress"
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(plain) as archive:
        assert "diff3d.npy" not in archive.namelist()
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    assert load_npz(plain).array_sha256 == {
        key: digest for key, digest in load_npz(fixture).array_sha256.items() if key != "diff3d"
    }


def test_layout_resolves_a_source_whose_sides_and_positions_are_all_64(
    tmp_path: Path, out: Path
) -> None:
    source = write_source(tmp_path / "square.npz", source_arrays(positions=64))
    refused = run_cli("generate", "--source", source, "--output", out / "f.npz")
    assert "--layout HWN or NHW" in one_error_line(refused)
    assert folder_entries(out) == []
    result = run_cli("generate", "--source", source, "--output", out / "f.npz", "--layout", "HWN")
    assert result.returncode == 0, result.stderr
    expected = source_arrays(positions=64)["diffraction"].transpose(2, 0, 1).astype(np.float32)
    assert np.array_equal(load_npz(out / "f.npz").arrays["diffraction"], expected)


def test_subset_strategy_first_needs_a_lower_min_coverage_on_a_raster(
    tmp_path: Path, out: Path
) -> None:
    raster = write_source(tmp_path / "raster.npz", source_arrays(positions=300))
    args = ("generate", "--source", raster, "--output", out / "f.npz", "--subset-strategy", "first")
    line = one_error_line(run_cli(*args))
    assert f"{raster}: the first subset covers" in line
    assert "use --subset-strategy spread (one position per cell" in line
    assert folder_entries(out) == []
    result = run_cli(*args, "--min-coverage", "0.05", "--subset-size", "20")
    assert result.returncode == 0, result.stderr
    assert sidecar(out / "f.npz")["subset_indices"] == list(range(20))


def test_metadata_out_puts_the_sidecar_where_asked(legacy: Path, out: Path) -> None:
    (out / "meta").mkdir()
    result = run_cli(
        "generate", "--source", legacy, "--output", out / "f.npz",
        "--metadata-out", out / "meta" / "described.json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert folder_entries(out) == ["f.npz", "f.npz.lock", "meta"]
    data = json.loads((out / "meta" / "described.json").read_text(encoding="utf-8"))
    assert data["sha256_checksum"] == hashlib.sha256((out / "f.npz").read_bytes()).hexdigest()


def test_generate_makes_the_missing_folders_of_output_and_metadata_out(
    legacy: Path, out: Path
) -> None:
    output, meta = out / "a" / "b" / "f.npz", out / "m" / "n" / "f.json"
    result = run_cli("generate", "--source", legacy, "--output", output, "--metadata-out", meta)
    assert result.returncode == 0, result.stderr
    assert folder_entries(output.parent) == ["f.npz", "f.npz.lock"]
    assert folder_entries(meta.parent) == ["f.json"]
    assert json.loads(meta.read_text(encoding="utf-8"))["sha256_checksum"] == (
        hashlib.sha256(output.read_bytes()).hexdigest()
    )
    beside = run_cli("generate", "--output", out / "c" / "d" / "g.npz")
    assert beside.returncode == 0, beside.stderr
    assert folder_entries(out / "c" / "d") == ["g.json", "g.npz", "g.npz.lock"]


@pytest.mark.parametrize("bad", BAD_SOURCES, ids=str)
def test_generate_refuses_a_bad_source_with_one_line_and_exit_status_2(
    bad: Bad, tmp_path: Path, out: Path
) -> None:
    source = bad.build(tmp_path)
    # In a folder still to be made: a refused source must not leave it behind.
    output = out / "new" / "f.npz"
    result = run_cli("generate", "--source", source, "--output", output, *bad.argv)
    line = one_error_line(result)
    assert line.startswith(f"ptycho-fixture: error: {source}: ")
    for fragment in bad.says:
        assert fragment in line
    if bad.key is not None:
        assert bad.key in line
    assert result.stdout == ""
    assert folder_entries(out) == []


def test_generate_never_unpickles_a_source_array(tmp_path: Path, out: Path) -> None:
    marker = tmp_path / "unpickled"
    members = source_members()
    members["probeGuess.npy"] = pickled_member(marker)
    source = write_zip(tmp_path / "source.npz", members)
    line = one_error_line(run_cli("generate", "--source", source, "--output", out / "f.npz"))
    assert "'probeGuess' holds Python objects" in line
    assert not marker.exists()
    assert folder_entries(out) == []


@needs_permissions
def test_generate_refuses_a_source_it_may_not_read(legacy: Path, out: Path) -> None:
    with permissions(legacy, 0o000):
        result = run_cli(
            "generate", "--source", legacy, "--output", out / "f.npz", unprivileged=True
        )
    line = one_error_line(result)
    assert line == f"ptycho-fixture: error: {legacy}: cannot be read (permission denied)"
    assert folder_entries(out) == []


@needs_permissions
def test_generate_below_a_read_only_folder_names_the_folder_it_cannot_make(
    legacy: Path, out: Path
) -> None:
    output = out / "a" / "b" / "f.npz"
    with permissions(out, 0o555):
        result = run_cli("generate", "--source", legacy, "--output", output, unprivileged=True)
    assert one_error_line(result) == (
        f"ptycho-fixture: error: {output}: cannot create the folder {out / 'a'}: Permission"
        f" denied; make {out} writable or choose another path"
    )
    assert result.stdout == ""
    assert folder_entries(out) == []


@needs_permissions
def test_generate_into_a_read_only_folder_names_the_output_and_leaves_it_empty(
    legacy: Path, out: Path
) -> None:
    with permissions(out, 0o555):
        result = run_cli(
            "generate", "--source", legacy, "--output", out / "f.npz", unprivileged=True
        )
    line = one_error_line(result)
    assert line.startswith(f"ptycho-fixture: error: {out / 'f.npz'}: cannot create a file in")
    assert "Permission denied" in line
    assert folder_entries(out) == []


IN_THE_WAY = (
    "cannot create the folder {out}/file: a file of that name is in the way; move it or"
    " choose another path"
)


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("file/a/f.npz", IN_THE_WAY),
        ("folder.npz", "is a directory but a file path is required for --output"),
    ],
    ids=["file-in-the-way", "directory"],
)
def test_generate_refuses_an_output_it_cannot_write(
    legacy: Path, out: Path, where: str, says: str
) -> None:
    (out / "folder.npz").mkdir()
    (out / "file").write_bytes(b"")
    line = one_error_line(run_cli("generate", "--source", legacy, "--output", out / where))
    assert line == f"ptycho-fixture: error: {out / where}: {says.format(out=out)}"
    assert folder_entries(out) == ["file", "folder.npz"]
    assert folder_entries(out / "folder.npz") == []


def test_generate_names_a_sidecar_with_a_file_in_its_way_and_writes_nothing(
    legacy: Path, out: Path
) -> None:
    (out / "file").write_bytes(b"")
    meta = out / "file" / "f.json"
    line = one_error_line(
        run_cli("generate", "--source", legacy, "--output", out / "new" / "f.npz",
                "--metadata-out", meta)
    )  # fmt: skip
    assert line == f"ptycho-fixture: error: {meta}: {IN_THE_WAY.format(out=out)}"
    assert folder_entries(out) == ["file"]


def test_generate_removes_the_folders_it_made_when_the_write_fails(out: Path) -> None:
    output = out / "a" / "b" / "f.npz"
    result = run_cli("generate", "--output", output, preexec_fn=_small_file_size_limit)
    line = one_error_line(result)
    assert line == f"ptycho-fixture: error: {output}: cannot write it: File too large"
    assert folder_entries(out) == []


def test_generate_removes_the_folders_it_made_when_one_cannot_be_made(
    legacy: Path, out: Path
) -> None:
    too_long = "x" * 300
    output = out / "a" / too_long / "f.npz"
    line = one_error_line(run_cli("generate", "--source", legacy, "--output", output))
    assert line == (
        f"ptycho-fixture: error: {output}: cannot create the folder {out / 'a' / too_long}:"
        " File name too long"
    )
    assert folder_entries(out) == []


def _small_file_size_limit() -> None:
    # In the child: files may not grow past 256 KiB, and a write past it fails with EFBIG
    # instead of killing the process.
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_bad_option_value_is_refused_quoting_the_value(legacy: Path, out: Path) -> None:
    result = run_cli(
        "generate", "--source", legacy, "--output", out / "f.npz", "--min-coverage", "2"
    )
    assert result.returncode == 2
    assert "'2' is not a fraction between 0 and 1" in result.stderr.splitlines()[-1]
    assert folder_entries(out) == []


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ptycho-fixture {pytest_ptycho_fixture.__version__}"


@pytest.mark.parametrize(("make_bad", "status"), [(False, 0), (True, 2)])
def test_the_program_entry_point_exits_with_the_commands_status_and_leaves_the_collector_alone(
    fixture: Path, tmp_path: Path, make_bad: bool, status: int
) -> None:
    target = tmp_path / "missing.npz" if make_bad else fixture
    program = (
        "import gc, sys\n"
        "from pytest_ptycho_fixture.cli import run\n"
        "sys.argv[1:] = ['verify', sys.argv[1]]\n"
        "try:\n"
        "    run()\n"
        "except SystemExit as exc:\n"
        "    print('status', exc.code, 'collector', gc.isenabled(), gc.get_freeze_count())\n"
    )
    result = run_cli(target, command=[sys.executable, "-c", program])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"status {status} collector True 0"
    assert ("OK " in result.stdout) is not make_bad
    assert ("error: " in result.stderr) is make_bad


# -------------------------------------------------------------------------- verify


def test_verify_passes_a_fixture_that_matches_its_sidecar(fixture: Path) -> None:
    result = run_cli("verify", fixture)
    assert result.returncode == 0, result.stderr
    digest = sidecar(fixture)["content_sha256"]
    assert result.stdout.strip() == (
        f"OK {fixture}: content_sha256 {digest} matches {fixture.with_suffix('.json')}"
    )


def test_verify_ignores_the_container_and_compares_content(fixture: Path) -> None:
    stored = fixture.read_bytes()
    write_npz(fixture, load_npz(fixture).arrays, compress=True)
    assert fixture.read_bytes() != stored
    assert run_cli("verify", fixture).returncode == 0


def test_verify_fails_with_status_1_naming_each_array_that_differs(fixture: Path) -> None:
    arrays = dict(load_npz(fixture).arrays)
    arrays["probeGuess"] = arrays["probeGuess"].copy()
    arrays["probeGuess"][10, 10] += np.complex64(1e-3)
    arrays["ycoords"] = arrays["ycoords"] + 0.5
    write_npz(fixture, arrays)
    result = run_cli("verify", fixture)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message.startswith(f"MISMATCH {fixture}: content_sha256 expected")
    named = re.findall(r"(\w+) \(expected [0-9a-f]{12}, got [0-9a-f]{12}\)", message)
    assert named == ["probeGuess", "ycoords"]


def test_verify_reads_the_sidecar_given_with_metadata(fixture: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere.json"
    fixture.with_suffix(".json").rename(moved)
    assert run_cli("verify", fixture, "--metadata", moved).returncode == 0
    line = one_error_line(run_cli("verify", fixture))
    assert line == f"ptycho-fixture: error: {fixture.with_suffix('.json')}: does not exist"


def test_verify_names_a_missing_fixture_not_its_sidecar(tmp_path: Path) -> None:
    missing = tmp_path / "missing.npz"
    line = one_error_line(run_cli("verify", missing))
    assert line == f"ptycho-fixture: error: {missing}: does not exist"


def test_verify_refuses_a_sidecar_that_is_not_json(fixture: Path) -> None:
    fixture.with_suffix(".json").write_text("{ not json", encoding="utf-8")
    line = one_error_line(run_cli("verify", fixture))
    assert f"{fixture.with_suffix('.json')}: is not valid JSON (line 1, column 3" in line


def test_verify_refuses_a_fixture_that_is_not_an_npz(fixture: Path) -> None:
    fixture.write_bytes(b"not a zip")
    line = one_error_line(run_cli("verify", fixture))
    assert f"{fixture}: is not a readable NPZ (zip) archive" in line


# ---------------------------------------------------------------------------- info


def test_info_shows_keys_shapes_dtypes_ranges_and_digests(fixture: Path) -> None:
    result = run_cli("info", fixture)
    assert result.returncode == 0, result.stderr
    loaded = load_npz(fixture)
    lines = result.stdout.splitlines()
    assert lines[0] == str(fixture)
    for key, array in loaded.arrays.items():
        (row,) = [line for line in lines if line.split()[:1] == [key]]
        assert "x".join(map(str, array.shape)) in row.split()
        assert str(array.dtype) in row.split()
        values = np.abs(array) if array.dtype.kind == "c" else array
        assert f"{values.min():.6g}, {values.max():.6g}]" in row
        assert f"sha256 {loaded.array_sha256[key][:16]}" in row
    assert f"content_sha256  {loaded.content_sha256}" in lines
    assert f"sha256_checksum {hashlib.sha256(fixture.read_bytes()).hexdigest()}" in lines


def test_info_refuses_a_hostile_file_with_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = write_zip(tmp_path / "x.npz", {"xcoords.npy": pickled_member(marker)})
    line = one_error_line(run_cli("info", path))
    assert line.startswith(f"ptycho-fixture: error: {path}: 'xcoords' holds Python objects")
    assert not marker.exists()


# ------------------------------------------------------------------------ simulate


def test_simulate_writes_a_source_that_generate_accepts(tmp_path: Path, out: Path) -> None:
    source = tmp_path / "simulated.npz"
    result = run_cli("simulate", "--output", source, "--positions", "80", "--layout", "NHW")
    assert result.returncode == 0, result.stderr
    arrays = load_npz(source)
    assert arrays.arrays["diffraction"].shape == (80, 64, 64)
    assert f"content_sha256  {arrays.content_sha256}" in result.stdout.splitlines()
    generated = run_cli(
        "generate", "--source", source, "--output", out / "f.npz", "--verify-source"
    )
    assert generated.returncode == 0, generated.stderr
    assert sidecar(out / "f.npz")["source_content_sha256"] == arrays.content_sha256


def test_the_simulated_full_source_gives_the_same_fixture_as_the_built_in_default(
    builtin_default: Path, tmp_path: Path, out: Path
) -> None:
    source = tmp_path / "run1084-like.npz"
    simulated = run_cli("simulate", "--output", source)
    assert simulated.returncode == 0, simulated.stderr
    assert load_npz(source).arrays["diffraction"].shape == (64, 64, 1087)
    generated = run_cli("generate", "--source", source, "--output", out / "f.npz")
    assert generated.returncode == 0, generated.stderr
    from_file, built_in = sidecar(out / "f.npz"), sidecar(builtin_default)
    assert from_file["content_sha256"] == built_in["content_sha256"]
    assert from_file["source_fingerprint"] == built_in["source_fingerprint"]
    assert from_file["source_content_sha256"] is None  # read in part: not digested
    assert (out / "f.npz").read_bytes() == builtin_default.read_bytes()


def test_simulate_makes_the_missing_folders_of_its_output(out: Path) -> None:
    source = out / "a" / "b" / "s.npz"
    result = run_cli("simulate", "--output", source, "--positions", "20")
    assert result.returncode == 0, result.stderr
    assert folder_entries(source.parent) == ["s.npz"]
    assert load_npz(source).arrays["diffraction"].shape == (64, 64, 20)


def test_simulate_refuses_an_output_with_a_file_in_its_way(out: Path) -> None:
    (out / "file").write_bytes(b"")
    source = out / "file" / "a" / "s.npz"
    line = one_error_line(run_cli("simulate", "--output", source, "--positions", "20"))
    assert line == f"ptycho-fixture: error: {source}: {IN_THE_WAY.format(out=out)}"
    assert folder_entries(out) == ["file"]


# ---------------------------------------------------------------------------- show


def test_show_makes_the_missing_folders_of_its_output(fixture: Path, out: Path) -> None:
    picture = out / "a" / "b" / "f.png"
    result = run_cli("show", fixture, "--output", picture)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"wrote {picture}"
    assert folder_entries(picture.parent) == ["f.png"]
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_show_refuses_a_file_that_is_not_a_fixture_and_leaves_no_folder(
    legacy: Path, out: Path
) -> None:
    line = one_error_line(run_cli("show", legacy, "--output", out / "a" / "b" / "f.png"))
    assert line.startswith(f"ptycho-fixture: error: {legacy}: ")
    assert folder_entries(out) == []


def test_show_refuses_an_output_with_a_file_in_its_way(fixture: Path, out: Path) -> None:
    (out / "file").write_bytes(b"")
    picture = out / "file" / "f.png"
    line = one_error_line(run_cli("show", fixture, "--output", picture))
    assert line == f"ptycho-fixture: error: {picture}: {IN_THE_WAY.format(out=out)}"
    assert folder_entries(out) == ["file", "fixture.json", "fixture.npz"]


# -------------------------------------------------------------------------- Ctrl-C

INTERRUPTED = "ptycho-fixture: interrupted; nothing was written"
ENTRY_POINTS: dict[str, Callable[[], list[str]]] = {
    "python -m": cli_command,
    "console script": lambda: [console_script()],
}


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A source whose diffraction (1 GiB in a 6 MiB file) takes a second or more to read."""
    return write_big_source(tmp_path_factory.mktemp("big") / "big.npz", positions=32768)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("command", ["simulate", "generate"])
def test_ctrl_c_while_a_command_works_exits_130_with_one_line_and_leaves_nothing(
    request: pytest.FixtureRequest, out: Path, command: str, entry: str
) -> None:
    if command == "simulate":
        # 20000 patterns take seconds; the bar appears once the first batch is done.
        args: list[object] = ["simulate", "--positions", "20000", "--output", out / "s.npz"]
        started = "simulating"
    else:
        source = request.getfixturevalue("big_source")
        args = ["generate", "--source", source, "--verify-source"]
        args += ["--output", out / "new" / "f.npz"]
        started = "reading source"
    terminal = start_on_terminal([*ENTRY_POINTS[entry](), *map(str, args)], out)
    # The bar is drawn once the first chunk of work is done: the command has started.
    terminal.read_until(started)
    os.kill(terminal.process.pid, signal.SIGINT)
    status = terminal.finish()
    shown = terminal.output
    assert status == 130, shown
    assert "Traceback" not in shown, shown
    assert shown.endswith(f"\n{INTERRUPTED}\n"), shown
    assert shown.count(INTERRUPTED) == 1, shown
    assert folder_entries(out) == []


CTRL_C_WHILE_PRINTING = """
import sys
from pytest_ptycho_fixture.cli import run

class CtrlC:
    # Stands for a terminal at which Ctrl-C is pressed as the first result is printed.
    def write(self, text):
        raise KeyboardInterrupt

    def flush(self):
        pass

sys.stdout = CtrlC()
run()
"""


def test_ctrl_c_after_the_files_are_written_names_them_and_exits_130(out: Path) -> None:
    output = out / "a" / "f.npz"
    result = run_cli(
        "generate", "--output", output, command=[sys.executable, "-c", CTRL_C_WHILE_PRINTING]
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr == (
        f"ptycho-fixture: interrupted after writing {output}, {output.with_suffix('.json')}\n"
    )
    assert folder_entries(output.parent) == ["f.json", "f.npz", "f.npz.lock"]
