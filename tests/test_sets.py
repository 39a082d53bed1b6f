"""Tests of the named fixture sets (``ptycho_fixture_sets``, ``ptycho_sets``), through real
pytest runs with real files, in-process and under pytest-xdist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from pytest_ptycho_fixture import spec
from pytest_ptycho_fixture.spec import FixtureSpec, OptionError

pytest_plugins = ["pytester"]

FOLDER = "tests/fixtures/ptycho"
NAMES = ("v1", "v2", "g2")
#: The three sets of the issue; the built-in source has 1087 positions.
SETS = """
    v1 source=builtin subset_size=64 strategy=stratified
    v2 source=builtin subset_size=128 strategy=stratified
    g2 source=builtin subset_size=64 strategy=groups gridsize=2
"""
#: One test per set, each asking for its own set only.
USES_EACH = """
    import pytest

    SIZES = {{"v1": 64, "v2": 128, "g2": 64}}

    @pytest.mark.parametrize("name", ["v1", "v2", "g2"])
    @pytest.mark.parametrize("i", range({n}))
    def test_uses_one_set(ptycho_sets, name, i):
        chosen = ptycho_sets[name]
        assert chosen.path.is_file()
        assert chosen.arrays["diffraction"].shape[0] == SIZES[name]
        assert chosen.metadata["subset_size"] == SIZES[name]
        assert chosen.tensors.diffraction.shape[0] == SIZES[name]
        assert (chosen.tensors.groups is not None) == (name == "g2")
"""


@pytest.fixture(autouse=True)
def _without_unrelated_plugins(request: pytest.FixtureRequest) -> None:
    # hypothesis's plugin re-imports hypothesis in every in-process run: seconds each.
    if "pytester" in request.fixturenames:
        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -W error")


def ini(pytester: pytest.Pytester, sets: str = SETS, **options: object) -> None:
    lines = "".join(f"{name} = {value}\n" for name, value in options.items())
    indented = "".join(f"    {line.strip()}\n" for line in sets.strip().splitlines())
    pytester.makeini(f"[pytest]\n{lines}ptycho_fixture_sets =\n{indented}")


def generations(output: str) -> int:
    match = re.search(r"^ptycho-fixture: (\d+) generations?\b", output, re.MULTILINE)
    assert match, output
    return int(match.group(1))


def npz(pytester: pytest.Pytester, name: str) -> Path:
    return pytester.path / FOLDER / f"{name}.npz"


def sidecar(pytester: pytest.Pytester, name: str) -> Path:
    return npz(pytester, name).with_suffix(".json")


def committed_sets(pytester: pytest.Pytester) -> None:
    """Create the three sets' sidecars, as if checked in, and remove their NPZs (cold)."""
    ini(pytester)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    made = pytester.runpytest("--regen-fixture=v1,v2,g2")
    made.assert_outcomes(passed=1)
    assert generations(made.stdout.str()) == 3
    (pytester.path / "test_nothing.py").unlink()
    for name in NAMES:
        assert sidecar(pytester, name).is_file()
        npz(pytester, name).unlink()


# -- parsing the lines ------------------------------------------------------------------

MAIN = FixtureSpec(Path("/project/main.npz"), Path("/project/main.json"), None, 96, "first")


def parse(*lines: str, main: FixtureSpec = MAIN) -> dict[str, FixtureSpec]:
    return spec.parse_sets(
        lines,
        "ini option ptycho_fixture_sets",
        root=Path("/project"),
        folder=Path("/sets"),
        main=main,
        layout="NHW",
    )


def test_a_set_takes_the_main_values_for_the_keys_its_line_leaves_out() -> None:
    sets = parse("plain", "more subset_size=128", "grouped strategy=groups subset_size=64")
    assert sets["plain"] == FixtureSpec(
        Path("/sets/plain.npz"), Path("/sets/plain.json"), None, 96, "first", True
    )
    assert sets["more"].subset_size == 128 and sets["more"].strategy == "first"
    assert (sets["grouped"].strategy, sets["grouped"].gridsize) == ("groups", 2)
    assert list(sets) == ["plain", "more", "grouped"]


def test_a_set_of_a_source_file_gets_the_configured_layout_and_its_own_path() -> None:
    (only,) = parse("real source=data/run.npz path=elsewhere/real.npz").values()
    assert only.source == Path("/project/data/run.npz")
    assert only.layout == "NHW"
    assert (only.path, only.sidecar) == (
        Path("/project/elsewhere/real.npz"),
        Path("/project/elsewhere/real.json"),
    )
    assert only.committed


def test_a_groups_set_inherits_the_gridsize_of_a_groups_main_fixture() -> None:
    main = FixtureSpec(Path("/m.npz"), Path("/m.json"), None, 81, "groups", gridsize=3)
    assert parse("same", main=main)["same"].gridsize == 3
    assert parse("other strategy=first", main=main)["other"].gridsize is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "g2 strategy=groups gridsize=3",
            (
                "ini option ptycho_fixture_sets, line 'g2 strategy=groups gridsize=3': gridsize: 3"
                " is not a gridsize for 96 positions: expected one whose square divides the subset"
                " size (9 does not divide 96)"
            ),
        ),
        (
            "v1 colour=red",
            (
                "ini option ptycho_fixture_sets, line 'v1 colour=red': colour: 'colour' is not a set"
                " key: expected source, subset_size, strategy, gridsize, layout, path,"
                " diffraction, keys, geometry or probe"
            ),
        ),
        (
            "v1 subset_size",
            (
                "ini option ptycho_fixture_sets, line 'v1 subset_size': subset_size: 'subset_size'"
                " is not a setting: expected key=value"
            ),
        ),
        (
            "v1 subset_size=8",
            (
                "ini option ptycho_fixture_sets, line 'v1 subset_size=8': subset_size: '8' is not a"
                " subset size: expected a whole number >= 16"
            ),
        ),
        (
            "v1 strategy=random",
            (
                "ini option ptycho_fixture_sets, line 'v1 strategy=random': strategy: 'random' is"
                " not a subset strategy: expected stratified, first, spread or groups"
            ),
        ),
        (
            "v/1",
            (
                "ini option ptycho_fixture_sets, line 'v/1': name: 'v/1' is not a set name:"
                " expected letters, digits, '_', '.' and '-'"
            ),
        ),
        (
            "default subset_size=128",
            (
                "ini option ptycho_fixture_sets, line 'default subset_size=128': name: 'default' is"
                " not a name a line may declare: expected another name (default is the main"
                " fixture, set by the ptycho_fixture_* options)"
            ),
        ),
        (
            "v1 gridsize=2",
            (
                "ini option ptycho_fixture_sets, line 'v1 gridsize=2': gridsize: 2 is not a setting"
                " for this strategy: expected no gridsize, or the groups strategy"
            ),
        ),
    ],
)
def test_a_bad_line_is_refused_naming_the_line_and_the_key(line: str, message: str) -> None:
    with pytest.raises(OptionError) as refused:
        parse(line)
    assert str(refused.value) == message


def test_a_name_or_a_path_declared_twice_is_refused() -> None:
    with pytest.raises(OptionError, match=r"line 'v1': name: 'v1' is not a new set name"):
        parse("v1 subset_size=128", "v1")
    with pytest.raises(
        OptionError, match=r"line 'b path=x.npz': path: .*it is the fixture of the set a"
    ):
        parse("a path=x.npz", "b path=x.npz")


def test_regen_names_every_set_without_a_value_and_refuses_an_unknown_one() -> None:
    assert spec.parse_regen(spec.REGEN_ALL, ["default", "v1", "g2"]) == ["default", "v1", "g2"]
    assert spec.parse_regen("g2,v1,g2", ["default", "v1", "g2"]) == ["g2", "v1"]
    with pytest.raises(
        OptionError,
        match=r"^--regen-fixture: 'v3' is not a fixture set:"
        r" expected default, v1 or g2, or no value",
    ):
        spec.parse_regen("g2,v3", ["default", "v1", "g2"])


# -- through pytest runs ----------------------------------------------------------------


def test_a_bad_line_is_a_usage_error_naming_the_line_and_the_key(
    pytester: pytest.Pytester,
) -> None:
    ini(pytester, "v1\ng2 strategy=groups gridsize=3")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            (
                "ERROR: ini option ptycho_fixture_sets in tox.ini, line 'g2 strategy=groups"
                " gridsize=3': gridsize: 3 is not a gridsize for 64 positions: expected*"
            )
        ]
    )


def test_the_header_lists_the_declared_sets(pytester: pytest.Pytester) -> None:
    ini(pytester)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        [
            "ptycho-fixture: *minimal_dataset_v1.npz*",
            (
                f"ptycho-fixture: sets v1 {FOLDER}/v1.npz (builtin:synthetic-run1084, 64 positions,"
                f" stratified), v2 {FOLDER}/v2.npz (*128 positions, stratified), g2 {FOLDER}/g2.npz"
                " (*64 positions, groups of 2x2)"
            ),
        ]
    )


def test_the_sets_are_made_once_cold_then_only_verified_warm(pytester: pytest.Pytester) -> None:
    committed_sets(pytester)
    pytester.makepyfile(USES_EACH.format(n=2))
    cold = pytester.runpytest()
    cold.assert_outcomes(passed=6)
    assert generations(cold.stdout.str()) == 3
    cold.stdout.fnmatch_lines(["ptycho-fixture: sets used: v1, v2, g2"])
    assert all(npz(pytester, name).is_file() for name in NAMES)
    warm = pytester.runpytest()
    warm.assert_outcomes(passed=6)
    assert generations(warm.stdout.str()) == 0
    warm.stdout.fnmatch_lines(["ptycho-fixture: 0 generations, 3 verifications, dev*"])


def test_each_set_is_generated_exactly_once_with_four_workers(pytester: pytest.Pytester) -> None:
    committed_sets(pytester)
    pytester.makepyfile(USES_EACH.format(n=8))
    result = pytester.runpytest("-n", "4")
    result.assert_outcomes(passed=24)
    # Cold, each set used needs one generation at least: three in all is one each.
    assert generations(result.stdout.str()) == 3
    result.stdout.fnmatch_lines(["ptycho-fixture: sets used: v1, v2, g2"])


def test_a_test_that_uses_one_set_generates_only_that_one(pytester: pytest.Pytester) -> None:
    committed_sets(pytester)
    pytester.makepyfile("def test_one(ptycho_sets):\n    assert ptycho_sets['v2'].path.is_file()\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["ptycho-fixture: 1 generation (main, * s), 1 verification", "*sets used: v2"]
    )
    assert [npz(pytester, name).is_file() for name in NAMES] == [False, True, False]


def test_regenerating_one_set_rewrites_only_its_sidecar(pytester: pytest.Pytester) -> None:
    committed_sets(pytester)
    g2 = json.loads(sidecar(pytester, "g2").read_text())
    sidecar(pytester, "g2").write_text(json.dumps({**g2, "created": "2000-01-01T00:00:00+00:00"}))
    before = {name: sidecar(pytester, name).read_bytes() for name in ("v1", "v2")}
    pytester.makepyfile(USES_EACH.format(n=2))
    # The main fixture's sidecar is the shipped one: naming a set must not trip its refusal.
    result = pytester.runpytest("-n", "2", "--regen-fixture=g2")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [f"ptycho-fixture: the sidecar {FOLDER}/g2.json was rewritten with the new digests*"]
    )
    assert "v1.json was rewritten" not in result.stdout.str()
    assert {name: sidecar(pytester, name).read_bytes() for name in ("v1", "v2")} == before
    rewritten = json.loads(sidecar(pytester, "g2").read_text())
    assert rewritten["created"] != "2000-01-01T00:00:00+00:00"
    assert rewritten["content_sha256"] == g2["content_sha256"]


def test_an_unknown_set_to_regenerate_is_a_usage_error_listing_the_known_names(
    pytester: pytest.Pytester,
) -> None:
    ini(pytester)
    result = pytester.runpytest("--regen-fixture=g3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --regen-fixture: 'g3' is not a fixture set: expected default, v1, v2 or g2*"]
    )


def test_plain_regen_still_refuses_the_shipped_sidecar_and_names_the_sets_instead(
    pytester: pytest.Pytester,
) -> None:
    ini(pytester)
    result = pytester.runpytest("--regen-fixture")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            (
                "ERROR: --regen-fixture would rewrite the sidecar shipped inside*;"
                " or regenerate only the sets: --regen-fixture=v1,v2,g2"
            )
        ]
    )
    assert not (pytester.path / FOLDER).exists()


def test_plain_regen_rewrites_the_main_sidecar_and_every_set_once(
    pytester: pytest.Pytester,
) -> None:
    ini(pytester, "v1\ng2 strategy=groups", ptycho_fixture_path="data/main.npz")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("-n", "2", "--regen-fixture")
    result.assert_outcomes(passed=1)
    assert generations(result.stdout.str()) == 3
    result.stdout.fnmatch_lines(
        [
            "ptycho-fixture: the sidecar data/main.json was rewritten*",
            "ptycho-fixture: the sidecar data/v1.json was rewritten*",
            "ptycho-fixture: the sidecar data/g2.json was rewritten*",
        ]
    )


def test_a_stale_committed_sidecar_of_a_set_is_reported_and_never_overwritten(
    pytester: pytest.Pytester,
) -> None:
    committed_sets(pytester)
    # A consistent sidecar of other data: what the generator or the source changing does.
    sidecar(pytester, "v1").write_bytes(sidecar(pytester, "v2").read_bytes())
    written = sidecar(pytester, "v1").read_bytes()
    expected = json.loads(written)["content_sha256"]
    pytester.makepyfile(
        """
        def test_v1(ptycho_sets):
            ptycho_sets["v1"]

        def test_v2(ptycho_sets):
            assert ptycho_sets["v2"].arrays["diffraction"].shape[0] == 128
        """
    )
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            (
                "*ptycho-fixture: the fixture generated from builtin:synthetic-run1084 does not match"
                f" the committed sidecar {FOLDER}/v1.json: content_sha256 expected {expected}, got *"
                f" run pytest --regen-fixture and commit {FOLDER}/v1.json*"
            ),
        ]
    )
    assert sidecar(pytester, "v1").read_bytes() == written


def test_the_sets_mapping_is_read_only_and_verifies_a_set_only_when_asked(
    pytester: pytest.Pytester,
) -> None:
    committed_sets(pytester)
    pytester.makepyfile(
        """
        import pytest

        def test_read_only(ptycho_sets, ptycho_tensors):
            assert list(ptycho_sets) == ["default", "v1", "v2", "g2"]
            assert "g2" in ptycho_sets and "g3" not in ptycho_sets
            with pytest.raises(TypeError):
                ptycho_sets["v3"] = ptycho_sets["v1"]
            with pytest.raises(TypeError):
                del ptycho_sets["v1"]
            with pytest.raises(KeyError, match="'g3' is not a fixture set"):
                ptycho_sets["g3"]
            with pytest.raises(AttributeError):
                ptycho_sets["v1"].name = "v2"
            with pytest.raises(ValueError, match="read-only"):
                ptycho_sets["v1"].arrays["diffraction"][0, 0, 0] = 1
            with pytest.raises(TypeError):
                ptycho_sets["v1"].metadata["content_sha256"] = "0" * 64
            assert ptycho_sets["default"].tensors is ptycho_tensors
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*sets used: default, v1"])
    assert [npz(pytester, name).is_file() for name in NAMES] == [True, False, False]


def test_a_test_that_modifies_a_sets_tensor_fails_and_the_next_sees_pristine_data(
    pytester: pytest.Pytester,
) -> None:
    committed_sets(pytester)
    pytester.makepyfile(
        test_mutation="""
        import numpy as np
        import torch

        def test_one(ptycho_sets):
            ptycho_sets["g2"].tensors.diffraction.add_(1)

        def test_two(ptycho_sets):
            chosen = ptycho_sets["g2"]
            with np.load(chosen.path) as data:
                on_disk = torch.from_numpy(data["diffraction"])
            assert torch.equal(chosen.tensors.diffraction.cpu(), on_disk)
            assert np.array_equal(chosen.arrays["diffraction"], on_disk.numpy())

        def test_a_clone_may_be_modified(ptycho_sets):
            copy = ptycho_sets["g2"].tensors.clone()
            copy.diffraction.add_(1)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    result.stdout.fnmatch_lines(
        [
            (
                "*test_mutation.py::test_one modified the shared session tensor"
                f" ptycho_sets?'g2'?.tensors.diffraction ({device}) in place.*restored from"
                f" {FOLDER}/g2.npz*call ptycho_sets?'g2'?.tensors.clone() for a private copy*"
            ),
            "FAILED test_mutation.py::test_one*",
        ]
    )


def test_sets_live_beside_the_configured_fixture_unless_a_path_is_given(
    pytester: pytest.Pytester,
) -> None:
    ini(pytester, "near\nfar path=other/far.npz", ptycho_fixture_path="data/main.npz")
    pytester.makepyfile(
        """
        def test_paths(ptycho_sets, ptycho_fixture_path):
            assert ptycho_sets["default"].path == ptycho_fixture_path
        """
    )
    pytester.runpytest("--regen-fixture").assert_outcomes(passed=1)
    made = sorted(str(path.relative_to(pytester.path)) for path in pytester.path.rglob("*.json"))
    assert made == ["data/main.json", "data/near.json", "other/far.json"]


def test_a_project_without_sets_has_only_the_default_and_no_sets_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_default(ptycho_sets, ptycho_fixture_path):
            assert list(ptycho_sets) == ["default"]
            assert ptycho_sets["default"].path == ptycho_fixture_path
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ptycho-fixture: sets used: default"])
    assert not re.search(r"^ptycho-fixture: sets (?!used:)", result.stdout.str(), re.MULTILINE)


def test_a_test_path_right_after_plain_regen_is_refused_saying_how_to_pass_it(
    pytester: pytest.Pytester,
) -> None:
    # The flag takes an optional value, so argparse hands it the path that follows.
    ini(pytester, "v1", ptycho_fixture_path="data/main.npz")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    refused = pytester.runpytest("--regen-fixture", "test_one.py")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        ["ERROR: --regen-fixture: 'test_one.py' is not a fixture set: *--regen-fixture -- PATH)"]
    )
    passed = pytester.runpytest("--regen-fixture", "--", "test_one.py")
    passed.assert_outcomes(passed=1)
    passed.stdout.fnmatch_lines(["*data/main.json was rewritten*", "*data/v1.json was rewritten*"])
