"""Tests of the pytest plugin, through real pytest runs (in-process, subprocesses, xdist)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import filelock
import numpy as np
import pytest
import torch

from pytest_ptycho_fixture import generate, plugin, simulate
from pytest_ptycho_fixture.npz import digests
from pytest_ptycho_fixture.npz import reader as npzread
from pytest_ptycho_fixture.npz import writer as npzwrite

pytest_plugins = ["pytester"]

FIXTURE = "tests/fixtures/pytorch_integration/minimal_dataset_v1.npz"
SIDECAR = "tests/fixtures/pytorch_integration/minimal_dataset_v1.json"
SOURCE = "datasets/Run1084_recon3_postPC_shrunk_3.npz"
CACHED = ".pytest_cache/d/ptycho-fixture/minimal_dataset_v1.npz"

USES_PATH = """
    import pytest

    @pytest.mark.parametrize("i", range({n}))
    def test_uses_the_fixture(ptycho_fixture_path, ptycho_arrays, i):
        assert ptycho_fixture_path.is_file()
        assert ptycho_arrays["diffraction"].shape[0] == 64
"""


@pytest.fixture(autouse=True)
def _without_unrelated_plugins(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # hypothesis's plugin re-imports hypothesis in every in-process run: seconds each.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -W error")


@pytest.fixture(scope="module")
def source_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200-position scan in the legacy (H, W, N) layout, like Run1084."""
    path = tmp_path_factory.mktemp("source") / "Run1084_recon3_postPC_shrunk_3.npz"
    npzwrite.write_npz(path, simulate.simulate_source(positions=200), compress=False)
    return path


def ini(pytester: pytest.Pytester, **options: object) -> None:
    lines = "".join(f"{name} = {value}\n" for name, value in options.items())
    pytester.makeini(f"[pytest]\n{lines}")


def generations(output: str) -> int:
    match = re.search(r"^ptycho-fixture: (\d+) generations?\b", output, re.MULTILINE)
    assert match, output
    return int(match.group(1))


def committed(pytester: pytest.Pytester, source: Path | None = None, subset: int = 64) -> Path:
    """Generate the fixture and its sidecar at the configured place, as if checked in."""
    fixture = pytester.path / FIXTURE
    fixture.parent.mkdir(parents=True, exist_ok=True)
    generate.generate_fixture(source, fixture, subset)
    return fixture


# -- zero configuration ---------------------------------------------------------------


def test_it_provides_the_builtin_fixture_with_zero_configuration(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import torch

        def test_tensors(ptycho_tensors, ptycho_metadata):
            assert ptycho_tensors.diffraction.shape == (64, 64, 64)
            assert ptycho_tensors.diffraction.dtype == torch.float32
            assert ptycho_tensors.coords.shape == (64, 2)
            assert ptycho_metadata["source_dataset"] == "builtin:synthetic-run1084"
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ptycho-fixture: 1 generation (main, * s), 1 verification, dev*"])
    assert (pytester.path / CACHED).is_file()
    assert not list(pytester.path.glob("*.npz")) and not list(pytester.path.glob("*.json"))
    again = pytester.runpytest("-qq")
    assert again.ret == pytest.ExitCode.OK
    again.stdout.fnmatch_lines(["ptycho-fixture: 0 generations, 1 verification, dev*"])


def test_it_reports_the_fixture_in_the_header(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            (
                f"ptycho-fixture: {CACHED}, sidecar *minimal_dataset_v1.json (shipped),"
                " source builtin:synthetic-run1084 (64 positions, stratified), device auto*"
            )
        ]
    )


def test_it_costs_nothing_to_a_run_that_does_not_use_it(pytester: pytest.Pytester) -> None:
    # Neither numpy nor torch, nor any module of the package beyond what configures the
    # run and prints its header: pytest parses and rewrites each one it loads.
    pytester.makeconftest(
        """
        import sys

        LIGHT = {"plugin", "spec", "stats", "devices", "_version"}

        def pytest_sessionfinish(session):
            ours = {
                name.partition(".")[2]
                for name in sys.modules
                if name.startswith("pytest_ptycho_fixture.")
            }
            print(f"\\n@ ours beyond the light ones: {sorted(ours - LIGHT)}")
            print(f"@ numpy and torch: {sorted({'numpy', 'torch'} & set(sys.modules))}")
        """
    )
    pytester.makepyfile("def test_plain():\n    pass\n")

    def loaded(result: pytest.RunResult) -> list[str]:
        result.assert_outcomes(passed=1)
        return [line for line in result.outlines if line.startswith("@ ")]

    result = pytester.runpytest_subprocess("-s")
    # Another plugin of the environment may import numpy itself: a run without ours is
    # the baseline. In a bare environment neither module is loaded.
    baseline = loaded(pytester.runpytest_subprocess("-s", "-p", "no:ptycho_fixture"))
    assert loaded(result) == ["@ ours beyond the light ones: []", baseline[1]]
    assert "ptycho-fixture: 0" not in result.stdout.str()
    assert not (pytester.path / CACHED).exists()


def test_importing_the_plugin_imports_neither_numpy_nor_torch() -> None:
    code = (
        "import sys, pytest_ptycho_fixture.plugin;"
        " assert 'numpy' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_it_uses_a_per_user_cache_without_the_cache_provider(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "xdg"))
    pytester.makepyfile(USES_PATH.format(n=1))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "xdg/pytest-ptycho-fixture/minimal_dataset_v1.npz").is_file()


def test_it_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_PATH.format(n=1))
    result = pytester.runpytest("-p", "no:ptycho_fixture")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'ptycho_fixture_path' not found*"])
    assert "ptycho-fixture:" not in result.stdout.str()


def test_its_fixtures_are_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines_random(
        [
            "ptycho_fixture_path* -- *plugin.py*",
            "*Path to the fixture NPZ, verified against its sidecar*",
            "ptycho_tensors* -- *plugin.py*",
            "*The fixture as tensors on ``ptycho_device``, shared by every test: do not modify.",
            "ptycho_batch -- *",
            "*A private copy of ``ptycho_tensors`` for one test, which it may modify freely.",
            "ptycho_fixture_factory* -- *",
        ]
    )


# -- a configured project -------------------------------------------------------------


def test_it_follows_a_configured_layout_like_ptychopinn(
    pytester: pytest.Pytester, source_npz: Path
) -> None:
    (pytester.path / "datasets").mkdir()
    (pytester.path / SOURCE).symlink_to(source_npz)
    ini(pytester, ptycho_fixture_path=FIXTURE, ptycho_fixture_source=SOURCE)
    pytester.makepyfile(
        """
        def test_subset(ptycho_tensors, ptycho_metadata):
            assert ptycho_tensors.diffraction.shape == (64, 64, 64)
            assert ptycho_metadata["source_positions"] == 200
            assert ptycho_metadata["source_layout"] == "HWN"
        """
    )
    missing = pytester.runpytest()
    missing.assert_outcomes(errors=1)
    missing.stdout.fnmatch_lines(
        [
            (
                f"*the sidecar {SIDECAR} does not exist, so {FIXTURE} cannot be verified;"
                f" create it with pytest --regen-fixture, then commit {SIDECAR}"
            )
        ]
    )
    created = pytester.runpytest("--regen-fixture")
    created.assert_outcomes(passed=1)
    created.stdout.fnmatch_lines(
        [
            "ptycho-fixture: 1 generation (main, * s), 1 verification, sidecar rewritten, *",
            f"ptycho-fixture: the sidecar {SIDECAR} was rewritten with the new digests; commit it",
        ]
    )
    metadata = json.loads((pytester.path / SIDECAR).read_text())
    assert metadata["source_dataset"] == SOURCE
    verified = pytester.runpytest()
    verified.assert_outcomes(passed=1)
    verified.stdout.fnmatch_lines(["ptycho-fixture: 0 generations, 1 verification, *"])


def test_an_ambiguous_source_needs_the_layout_option_and_follows_it(
    pytester: pytest.Pytester,
) -> None:
    # 64 positions on a 64x64 detector: (64, 64, 64) reads as (H, W, N) and as (N, H, W).
    (pytester.path / "datasets").mkdir()
    npzwrite.write_npz(pytester.path / SOURCE, simulate.simulate_source(positions=64, layout="HWN"))
    pytester.makepyfile(
        """
        def test_layout(ptycho_metadata):
            assert ptycho_metadata["source_layout"] == "HWN"
        """
    )
    ini(pytester, ptycho_fixture_path=FIXTURE, ptycho_fixture_source=SOURCE)
    ambiguous = pytester.runpytest("--regen-fixture")
    assert ambiguous.ret == pytest.ExitCode.USAGE_ERROR
    ambiguous.stderr.fnmatch_lines(
        [
            (
                "*'diffraction' has shape (64, 64, 64) and 64 positions match both axis 0 and axis 2;"
                " say which layout it is: --layout HWN or NHW (in pytest: the ptycho_fixture_layout"
                " ini option)*"
            )
        ]
    )
    assert not (pytester.path / SIDECAR).exists()
    ini(
        pytester,
        ptycho_fixture_path=FIXTURE,
        ptycho_fixture_source=SOURCE,
        ptycho_fixture_layout="HWN",
    )
    pytester.runpytest("--regen-fixture").assert_outcomes(passed=1)
    pytester.runpytest().assert_outcomes(passed=1)
    ini(pytester, ptycho_fixture_path=FIXTURE, ptycho_fixture_layout="HWN-ish")
    bad = pytester.runpytest()
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        ["*ini option ptycho_fixture_layout in tox.ini: 'HWN-ish' is not a layout*"]
    )


def test_it_verifies_against_a_sidecar_configured_on_its_own(pytester: pytest.Pytester) -> None:
    committed(pytester)
    (pytester.path / SIDECAR).rename(pytester.path / "reference.json")
    ini(pytester, ptycho_fixture_metadata="reference.json")
    pytester.makepyfile(USES_PATH.format(n=1))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f"ptycho-fixture: {CACHED}, sidecar reference.json, source *",
            "ptycho-fixture: 1 generation (main, * s), 1 verification*",
        ]
    )


def test_it_explains_a_missing_source(pytester: pytest.Pytester) -> None:
    committed(pytester).unlink()
    ini(pytester, ptycho_fixture_path=FIXTURE, ptycho_fixture_source="datasets/missing.npz")
    pytester.makepyfile(USES_PATH.format(n=2))
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            (
                f"*the fixture {FIXTURE} does not exist and cannot be generated: its source"
                " datasets/missing.npz does not exist. Put the source dataset at"
                f" datasets/missing.npz (or point ptycho_fixture_source*, or provide {FIXTURE}*"
            )
        ]
    )
    assert generations(result.stdout.str()) == 0
    regen = pytester.runpytest("--regen-fixture")
    assert regen.ret == pytest.ExitCode.USAGE_ERROR
    regen.stderr.fnmatch_lines(
        [
            (
                f"ERROR: ptycho-fixture: cannot regenerate {FIXTURE}: its source"
                " datasets/missing.npz does not exist.*"
            )
        ]
    )


def test_it_fails_with_the_differing_arrays_when_the_generator_output_changed(
    pytester: pytest.Pytester,
) -> None:
    committed(pytester, subset=32).unlink()
    expected = json.loads((pytester.path / SIDECAR).read_text())["content_sha256"]
    sidecar_bytes = (pytester.path / SIDECAR).read_bytes()
    ini(pytester, ptycho_fixture_path=FIXTURE)
    pytester.makepyfile(USES_PATH.format(n=4))
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(
        [
            (
                "*the fixture generated from builtin:synthetic-run1084 does not match the committed"
                f" sidecar {SIDECAR}: content_sha256 expected {expected}, got *; arrays that"
                " differ: diff3d (shape (64, 64, 64), the sidecar says (32, 64, 64); expected *,"
                " got *), diffraction (*. The generator or the source changed; if that is"
                f" intended, run pytest --regen-fixture and commit {SIDECAR}"
            )
        ]
    )
    assert generations(result.stdout.str()) == 1
    assert (pytester.path / SIDECAR).read_bytes() == sidecar_bytes


def test_it_never_overwrites_a_broken_sidecar_without_regen(pytester: pytest.Pytester) -> None:
    committed(pytester)
    (pytester.path / SIDECAR).write_text('{"content_sha256": "hand edited"')
    ini(pytester, ptycho_fixture_path=FIXTURE)
    pytester.makepyfile(USES_PATH.format(n=1))
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*the sidecar {SIDECAR} is not valid JSON (line 1, column 33*"])
    assert (pytester.path / SIDECAR).read_text() == '{"content_sha256": "hand edited"'


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_it_heals_a_damaged_cached_fixture(pytester: pytest.Pytester, damage: str) -> None:
    fixture = committed(pytester)
    sidecar_bytes = (pytester.path / SIDECAR).read_bytes()
    data = bytearray(fixture.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2 :]
    else:
        data[len(data) // 2] ^= 0x10
    fixture.write_bytes(bytes(data))
    ini(pytester, ptycho_fixture_path=FIXTURE)
    pytester.makepyfile(USES_PATH.format(n=2))
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "ptycho-fixture: 1 generation (main, * s), 1 verification, healed 1 cached file",
            (
                f"ptycho-fixture: healed {FIXTURE}: it was * regenerated from"
                f" builtin:synthetic-run1084, it matches {SIDECAR}"
            ),
        ]
    )
    assert (pytester.path / SIDECAR).read_bytes() == sidecar_bytes


@pytest.mark.parametrize("where", ["on the command line", "in PYTEST_ADDOPTS"])
@pytest.mark.parametrize("option", ["--ptycho-fixture-source", "--ptycho-fixture-store"])
def test_a_path_option_with_its_value_after_a_space_is_refused_naming_the_equals_form(
    pytester: pytest.Pytester,
    source_npz: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    where: str,
) -> None:
    # The value lies outside the rootdir: pytest would look for the ini file above it.
    assert not source_npz.is_relative_to(pytester.path)
    ini(pytester, ptycho_fixture_path=FIXTURE)
    pytester.makepyfile(USES_PATH.format(n=1))
    value = str(source_npz if option.endswith("source") else source_npz.parent)
    args = ["--regen-fixture", option, value]
    if where == "in PYTEST_ADDOPTS":
        monkeypatch.setenv("PYTEST_ADDOPTS", f"{os.environ['PYTEST_ADDOPTS']} {option} {value}")
        args = ["--regen-fixture"]
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {option} {value} ({where}): write {option}={value}; with a space, pytest *"]
    )
    assert not (pytester.path / SIDECAR).exists()
    assert not (pytester.path / FIXTURE).exists() and not (pytester.path / CACHED).exists()


def test_a_source_outside_the_rootdir_given_with_equals_rewrites_the_projects_sidecar(
    pytester: pytest.Pytester, source_npz: Path
) -> None:
    assert not source_npz.is_relative_to(pytester.path)
    ini(pytester, ptycho_fixture_path=FIXTURE)
    pytester.makepyfile(USES_PATH.format(n=1))
    result = pytester.runpytest_subprocess("--regen-fixture", f"--ptycho-fixture-source={source_npz}")
    result.assert_outcomes(passed=1)
    assert generations(result.stdout.str()) == 1
    metadata = json.loads((pytester.path / SIDECAR).read_text())
    assert metadata["source_positions"] == 200
    assert (pytester.path / FIXTURE).is_file() and not (pytester.path / CACHED).exists()


def test_a_store_outside_the_rootdir_given_with_equals_is_fetched_from(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    fixture = committed(pytester)
    store = tmp_path_factory.mktemp("store")
    digest = json.loads((pytester.path / SIDECAR).read_text())["content_sha256"]
    fixture.rename(store / f"{digest}.npz")
    ini(pytester, ptycho_fixture_path=FIXTURE)
    pytester.makepyfile(USES_PATH.format(n=1))
    result = pytester.runpytest_subprocess(f"--ptycho-fixture-store={store}")
    result.assert_outcomes(passed=1)
    assert generations(result.stdout.str()) == 0
    result.stdout.fnmatch_lines([f"ptycho-fixture: 0 generations, fetched from {store} (1 file*"])


# -- once, across workers and runs ------------------------------------------------------


def test_it_generates_once_with_four_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_PATH.format(n=16))
    result = pytester.runpytest("-n", "4")
    result.assert_outcomes(passed=16)
    result.stdout.fnmatch_lines(["ptycho-fixture: 1 generation (gw?, * s), * verifications"])


def test_it_generates_once_across_two_concurrent_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USES_PATH.format(n=2))
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:randomly"],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum(generations(output) for output in outputs) == 1


def test_it_regenerates_and_rewrites_the_sidecar_once_with_four_workers(
    pytester: pytest.Pytester,
) -> None:
    committed(pytester)
    sidecar = pytester.path / SIDECAR
    old = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**old, "created": "2000-01-01T00:00:00+00:00"}))
    ini(pytester, ptycho_fixture_path=FIXTURE)
    pytester.makepyfile(USES_PATH.format(n=8))
    result = pytester.runpytest("-n", "4", "--regen-fixture")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(
        [
            "ptycho-fixture: 1 generation (main, * s), * verifications, sidecar rewritten",
            f"ptycho-fixture: the sidecar {SIDECAR} was rewritten with the new digests; commit it",
        ]
    )
    new = json.loads(sidecar.read_text())
    assert new["created"] != "2000-01-01T00:00:00+00:00"
    assert new["content_sha256"] == old["content_sha256"]


@pytest.mark.parametrize("verify", [False, True])
def test_regenerating_records_the_source_digest_only_when_the_source_is_verified(
    pytester: pytest.Pytester, source_npz: Path, verify: bool
) -> None:
    source = pytester.path / SOURCE
    source.parent.mkdir(parents=True)
    source.write_bytes(source_npz.read_bytes())
    committed(pytester, source)
    options = {"ptycho_fixture_path": FIXTURE, "ptycho_fixture_source": SOURCE}
    ini(pytester, **options, ptycho_fixture_verify_source=str(verify).lower())
    pytester.makepyfile(USES_PATH.format(n=2))
    pytester.runpytest("--regen-fixture").assert_outcomes(passed=2)
    sidecar = json.loads((pytester.path / SIDECAR).read_text())
    with npzread.NpzReader(source) as reader:
        assert sidecar["source_fingerprint"] == reader.fingerprint()
        digest = digests.content_digests(
            {key: reader.read(key) for key in reader.members if key != "diff3d"}
        )[0]
    assert sidecar["source_content_sha256"] == (digest if verify else None)


def test_it_refuses_to_regenerate_the_shipped_sidecar(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--regen-fixture")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --regen-fixture would rewrite the sidecar shipped inside*ptycho_fixture_path*"]
    )


def test_a_lock_held_elsewhere_times_out_naming_the_lock_file(pytester: pytest.Pytester) -> None:
    lock = pytester.path / f"{CACHED}.lock"
    lock.parent.mkdir(parents=True)
    ini(pytester, ptycho_fixture_lock_timeout=1)
    pytester.makepyfile(USES_PATH.format(n=1))
    with filelock.FileLock(lock):
        result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*ptycho-fixture: waited 1 s for the lock {lock}, which*"])


def test_a_killed_generator_blocks_nothing_and_leaves_no_partial_file(
    pytester: pytest.Pytester,
) -> None:
    cached = pytester.path / CACHED
    cached.parent.mkdir(parents=True)
    partial = cached.with_name(".minimal_dataset_v1.npz.x7q2.tmp")
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time, filelock
                lock = filelock.FileLock({str(cached) + ".lock"!r})
                lock.acquire()
                with open({str(partial)!r}, "wb") as handle:
                    handle.write(b"PK half an npz")
                print("generating", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == "generating\n"
        os.kill(holder.pid, signal.SIGKILL)
    ini(pytester, ptycho_fixture_lock_timeout=5)
    pytester.makepyfile(USES_PATH.format(n=1))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert generations(result.stdout.str()) == 1
    assert not partial.exists()


# -- tensors and the guard --------------------------------------------------------------


def test_a_test_that_modifies_the_shared_tensors_fails_and_the_next_sees_pristine_data(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_mutation="""
        import torch

        def test_one(ptycho_tensors):
            ptycho_tensors.diffraction.add_(1)

        def test_two(ptycho_tensors, ptycho_arrays, ptycho_fixture_path):
            import numpy as np
            with np.load(ptycho_fixture_path) as data:
                on_disk = torch.from_numpy(data["diffraction"])
            assert torch.equal(ptycho_tensors.diffraction.cpu(), on_disk)
            assert np.array_equal(ptycho_arrays["diffraction"], data_diffraction(ptycho_fixture_path))

        def data_diffraction(path):
            import numpy as np
            with np.load(path) as data:
                return data["diffraction"]

        def test_batch_may_be_modified(ptycho_batch, ptycho_tensors):
            ptycho_batch.diffraction.add_(1)
            ptycho_batch.coords.zero_()
            assert not torch.equal(ptycho_batch.diffraction, ptycho_tensors.diffraction)

        def test_after_the_batch(ptycho_tensors, ptycho_arrays):
            expected = torch.from_numpy(ptycho_arrays["diffraction"].copy())
            assert torch.equal(ptycho_tensors.diffraction.cpu(), expected)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3, failed=1)
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    result.stdout.fnmatch_lines(
        [
            (
                "*test_mutation.py::test_one modified the shared session tensor"
                f" ptycho_tensors.diffraction ({device}) in place.*request the ptycho_batch fixture"
                " instead for a private copy*"
            ),
            "FAILED test_mutation.py::test_one*",
        ]
    )


def test_it_hands_out_read_only_arrays_and_metadata(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_read_only(ptycho_arrays, ptycho_metadata):
            with pytest.raises(ValueError, match="read-only"):
                ptycho_arrays["diffraction"][0, 0, 0] = 1
            with pytest.raises(TypeError):
                ptycho_arrays["diffraction"] = None
            with pytest.raises(TypeError):
                ptycho_metadata["content_sha256"] = "0" * 64
            with pytest.raises(TypeError):
                ptycho_metadata["arrays"]["diffraction"]["sha256"] = "0" * 64
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--ptycho-device", "gpu"],
            (
                "*argument --ptycho-device: 'gpu' is not a device: expected auto, cpu, cuda, cuda:N"
                " or all"
            ),
        ),
        (
            ["-o", "ptycho_device=gpu"],
            "ERROR: ini option ptycho_device: 'gpu' is not a device: expected auto, cpu, cuda*",
        ),
        (
            ["-o", "ptycho_fixture_subset_size=many"],
            (
                "ERROR: ini option ptycho_fixture_subset_size: 'many' is not a subset size:"
                " expected a whole number >= 16"
            ),
        ),
        (
            ["-o", "ptycho_fixture_subset_strategy=random"],
            (
                "ERROR: ini option ptycho_fixture_subset_strategy: 'random' is not a subset"
                " strategy: expected stratified, first, spread or groups"
            ),
        ),
        (
            ["--ptycho-fixture-lock-timeout", "-1"],
            "*argument --ptycho-fixture-lock-timeout: '-1' is not a lock timeout*",
        ),
    ],
)
def test_a_bad_option_value_is_a_usage_error_naming_the_option(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_the_factory_makes_and_caches_variants(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import numpy as np

        def test_variant(ptycho_fixture_factory, ptycho_fixture_path):
            small = ptycho_fixture_factory(subset_size=32)
            assert small != ptycho_fixture_path
            assert small.parent == ptycho_fixture_path.parent
            with np.load(small) as data:
                assert data["diffraction"].shape == (32, 64, 64)
            assert ptycho_fixture_factory(subset_size=32) == small
        """
    )
    first = pytester.runpytest()
    first.assert_outcomes(passed=1)
    assert generations(first.stdout.str()) == 2
    second = pytester.runpytest()
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["ptycho-fixture: 0 generations, 2 verifications*"])


def test_the_factory_builds_variants_of_an_ambiguous_source_in_the_layout_asked_for(
    pytester: pytest.Pytester,
) -> None:
    # 64 positions on a 64x64 detector: (64, 64, 64) reads as (H, W, N) and as (N, H, W).
    (pytester.path / "datasets").mkdir()
    scan = simulate.simulate_source(positions=64, layout="HWN")
    npzwrite.write_npz(pytester.path / SOURCE, scan)
    hwn = np.ascontiguousarray(np.moveaxis(scan["diffraction"], 2, 0))
    # stratified keeps floor(i * N / n): every other pattern of the 64.
    np.save(pytester.path / "hwn.npy", hwn[(np.arange(32) * 64) // 32].astype(np.float32))
    pytester.makepyfile(
        f"""
        import json

        import numpy as np
        import pytest

        SOURCE = {SOURCE!r}

        def test_each_layout_is_a_variant_of_its_own(ptycho_fixture_factory):
            hwn = ptycho_fixture_factory(subset_size=32, source=SOURCE, layout="HWN")
            nhw = ptycho_fixture_factory(subset_size=32, source=SOURCE, layout="NHW")
            assert hwn != nhw
            assert json.loads(hwn.with_suffix(".json").read_text())["source_layout"] == "HWN"
            assert json.loads(nhw.with_suffix(".json").read_text())["source_layout"] == "NHW"
            with np.load(hwn) as a, np.load(nhw) as b:
                assert np.array_equal(a["diffraction"], np.load("hwn.npy"))
                assert not np.array_equal(a["diffraction"], b["diffraction"])

        def test_without_a_layout_it_fails_with_the_ambiguity(ptycho_fixture_factory):
            ptycho_fixture_factory(subset_size=32, source=SOURCE)

        def test_a_bad_layout_fails_naming_the_argument(ptycho_fixture_factory):
            ptycho_fixture_factory(source=SOURCE, layout="WHN")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*'diffraction' has shape (64, 64, 64) and 64 positions match both axis 0 and axis 2;*",
            (
                "*ptycho_fixture_factory: layout: 'WHN' is not a layout: expected HWN or NHW (or"
                " nothing, to decide it from the number of coordinates)"
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    assert generations(result.stdout.str()) == 2


def test_the_plugin_keeps_its_state_under_one_stash_key() -> None:
    keys = [name for name, value in vars(plugin).items() if isinstance(value, pytest.StashKey)]
    assert keys == ["STATE"]


def test_the_spread_strategy_is_an_ini_option_and_its_fixture_covers_the_scan(
    pytester: pytest.Pytester,
) -> None:
    ini(pytester, ptycho_fixture_subset_strategy="spread")
    pytester.makepyfile(
        """
        def test_spread(ptycho_metadata, ptycho_arrays):
            assert ptycho_metadata["subset_strategy"] == "spread"
            assert ptycho_metadata["coverage"]["cells_8x8"] == 64
            assert ptycho_arrays["diffraction"].shape == (64, 64, 64)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ptycho-fixture: *(made with the fixture)*(64 positions, spread)*"])


def test_a_groups_fixture_hands_its_groups_to_torch_and_the_others_hand_none(
    pytester: pytest.Pytester,
) -> None:
    ini(pytester, ptycho_fixture_subset_strategy="groups", ptycho_fixture_gridsize=2)
    pytester.makepyfile(
        """
        import torch

        def test_groups(ptycho_tensors, ptycho_metadata, ptycho_device):
            groups = ptycho_tensors.groups
            assert groups.dtype == torch.int64 and groups.shape == (16, 4)
            assert groups.device == ptycho_device
            assert groups.tolist() == [list(g) for g in ptycho_metadata["groups"]]
            # One batch of gridsize groups: (groups, 4, H, W).
            assert ptycho_tensors.diffraction[groups].shape == (16, 4, 64, 64)

        def test_variants(ptycho_fixture_factory):
            import numpy as np

            with np.load(ptycho_fixture_factory(strategy="groups", gridsize=4)) as data:
                assert data["groups"].shape == (4, 16)
            with np.load(ptycho_fixture_factory(strategy="stratified")) as data:
                assert "groups" not in data.files
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["ptycho-fixture: *(64 positions, groups of 2x2)*"])


def test_a_default_fixture_has_no_groups_tensor(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_groups(ptycho_tensors):
            assert ptycho_tensors.groups is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"ptycho_fixture_gridsize": 2},
            ("ERROR: ini option ptycho_fixture_gridsize in tox.ini: 2 is not a setting for this"
            " strategy: expected no gridsize, or the groups strategy"),
        ),
        (
            {"ptycho_fixture_subset_strategy": "groups", "ptycho_fixture_gridsize": "two"},
            ("ERROR: ini option ptycho_fixture_gridsize in tox.ini: 'two' is not a gridsize:"
            " expected a whole number >= 1, e.g. 2 for 2x2 groups"),
        ),
        (
            {"ptycho_fixture_subset_strategy": "groups", "ptycho_fixture_subset_size": 18},
            ("ERROR: ini option ptycho_fixture_gridsize in tox.ini: 2 is not a gridsize for 18"
            " positions: expected one whose square divides the subset size (4 does not divide"
            " 18)"),
        ),
    ],
)
def test_a_gridsize_that_does_not_fit_is_a_usage_error(
    pytester: pytest.Pytester, options: dict[str, object], message: str
) -> None:
    ini(pytester, **options)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
