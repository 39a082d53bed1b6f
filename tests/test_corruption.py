"""Corruption of the cached fixture and of its sidecar: every kind is detected, named in the
message, and healed from the source when there is one, or reported with the fix when there
is not; nothing the user owns is overwritten without --regen-fixture."""

from __future__ import annotations

import io
import json
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from processes import content_digest, temporary_files

from pytest_ptycho_fixture.cache import FixtureCache
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.messages import FixtureError
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.npz.writer import write_npz_to
from pytest_ptycho_fixture.spec import SHIPPED_SIDECAR, FixtureSpec, main_spec

CACHED_FOLDER = ".pytest_cache/d/ptycho-fixture"
FIXTURE = "fixtures/minimal_dataset_v1.npz"
SIDECAR = "fixtures/minimal_dataset_v1.json"
MISSING_SOURCE = "datasets/Run1084_recon3_postPC_shrunk_3.npz"
SEED = 20240613
RANDOM_FLIPS = 8

USES_THE_FIXTURE = """
import pytest

@pytest.mark.parametrize("i", range(2))
def test_uses_the_fixture(ptycho_arrays, i):
    assert ptycho_arrays["diffraction"].shape == (64, 64, 64)
"""


@pytest.fixture(autouse=True)
def _without_unrelated_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    # hypothesis's plugin re-imports hypothesis in every in-process run: seconds each.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -W error")


@dataclass(frozen=True)
class Pristine:
    """The built-in default fixture and its sidecar, as bytes."""

    npz: bytes
    sidecar: bytes
    digest: str


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Pristine:
    folder = tmp_path_factory.mktemp("pristine")
    result = generate_fixture(None, folder / "minimal_dataset_v1.npz")
    npz = result.output_path.read_bytes()
    return Pristine(
        npz, result.metadata_path.read_bytes(), load_npz(result.output_path).content_sha256
    )


# ------------------------------------------------------------------ the damage done


def _member(data: bytes, name: str) -> tuple[zipfile.ZipInfo, int]:
    """A member's entry and the offset of its data."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(name)
    start = info.header_offset
    name_length = int.from_bytes(data[start + 26 : start + 28], "little")
    extra_length = int.from_bytes(data[start + 28 : start + 30], "little")
    return info, start + 30 + name_length + extra_length


def _central_entry(data: bytes, name: str) -> int:
    start = 0
    while True:
        start = data.index(b"PK\x01\x02", start)
        if data[start + 46 : start + 46 + len(name)] == name.encode():
            return start
        start += 4


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


def _rewritten(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    """Damage that leaves a valid zip: the arrays are changed and written again."""

    def damage(data: bytes) -> bytes:
        with np.load(io.BytesIO(data)) as archive:
            arrays = {key: archive[key] for key in archive.files}
        change(arrays)
        buffer = io.BytesIO()
        write_npz_to(buffer, arrays)
        return buffer.getvalue()

    return damage


def _changed_value(arrays: dict[str, Any]) -> None:
    arrays["diffraction"] = arrays["diffraction"].copy()
    arrays["diffraction"][3, 4, 5] += np.float32(0.25)


def _float64(arrays: dict[str, Any]) -> None:
    arrays["diffraction"] = arrays["diffraction"].astype(np.float64)


def _half_the_patterns(arrays: dict[str, Any]) -> None:
    arrays["diffraction"] = arrays["diffraction"][:32]


def _no_probe(arrays: dict[str, Any]) -> None:
    del arrays["probeGuess"]


def _extra(arrays: dict[str, Any]) -> None:
    arrays["notes"] = np.arange(3)


def _data_bit(data: bytes) -> bytes:
    info, begin = _member(data, "diffraction.npy")
    return _flip(data, begin + info.compress_size // 2, 3)


def _local_header_bit(data: bytes) -> bytes:
    info, _ = _member(data, "diffraction.npy")
    return _flip(data, info.header_offset)


def _central_directory_bit(data: bytes) -> bytes:
    return _flip(data, _central_entry(data, "diffraction.npy") + 16, 5)


@dataclass(frozen=True)
class Damage:
    """Damage done to the cached NPZ, and what the message must say about it."""

    name: str
    apply: Callable[[bytes], bytes]
    says: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


NOT_A_ZIP = "was damaged (is not a readable NPZ (zip) archive"
NPZ_DAMAGE = (
    Damage("truncated to half", lambda data: data[: len(data) // 2], (NOT_A_ZIP,)),
    Damage("zero-length", lambda data: b"", (NOT_A_ZIP,)),
    Damage("not a zip", lambda data: b"diffraction,xcoords\n0.5,34.4\n" * 64, (NOT_A_ZIP,)),
    Damage(
        "a flipped bit in the diffraction data",
        _data_bit,
        ("was damaged ('diffraction' cannot be read (", "the file is damaged"),
    ),
    Damage(
        "a flipped bit in a local zip header",
        _local_header_bit,
        ("was damaged ('diffraction' has no valid .npy header (Bad magic number",),
    ),
    Damage(
        "a flipped bit in the central directory",
        _central_directory_bit,
        ("was damaged ('diffraction' cannot be read (its CRC-32 is", "the file is damaged"),
    ),
    Damage(
        "a changed diffraction value in a valid zip",
        _rewritten(_changed_value),
        ("did not match the sidecar", "arrays that differ: diffraction (expected "),
    ),
    Damage(
        "diffraction stored as float64",
        _rewritten(_float64),
        ("arrays that differ: diffraction (dtype float64, the sidecar says float32; expected",),
    ),
    Damage(
        "diffraction with half its patterns",
        _rewritten(_half_the_patterns),
        (
            (
                "arrays that differ: diffraction (shape (32, 64, 64), the sidecar says"
                " (64, 64, 64); expected"
            ),
        ),
    ),
    Damage(
        "a missing member", _rewritten(_no_probe), ("arrays that differ: probeGuess (missing)",)
    ),
    Damage(
        "an extra member", _rewritten(_extra), ("arrays that differ: notes (not in the sidecar)",)
    ),
)


# ----------------------------------------------------------------------- the cached NPZ


def _default(folder: Path) -> FixtureSpec:
    """The zero-configuration fixture: the built-in source, the shipped sidecar."""
    return main_spec(
        path=None, sidecar=None, source=None, subset_size=64, strategy="stratified", folder=folder
    )


def _committed(root: Path, pristine: Pristine, npz: bytes, source: Path | None) -> FixtureSpec:
    """A fixture and its sidecar as checked in to a project, made from ``source``."""
    spec = FixtureSpec(root / FIXTURE, root / SIDECAR, source)
    spec.path.parent.mkdir(parents=True)
    spec.path.write_bytes(npz)
    spec.sidecar.write_bytes(pristine.sidecar)
    return spec


@pytest.mark.parametrize("damage", NPZ_DAMAGE, ids=str)
def test_a_damaged_cached_fixture_is_named_and_healed_from_its_source(
    tmp_path: Path, pristine: Pristine, damage: Damage
) -> None:
    spec = _default(tmp_path / CACHED_FOLDER)
    spec.path.parent.mkdir(parents=True)
    spec.path.write_bytes(damage.apply(pristine.npz))
    assert content_digest(spec.path) != pristine.digest
    fixtures = FixtureCache(root=tmp_path)
    assert fixtures.get(spec).metadata["content_sha256"] == pristine.digest
    first, line = fixtures.stats.summary()
    assert first.startswith("ptycho-fixture: 1 generation (main, ")
    assert line.startswith(f"ptycho-fixture: healed {CACHED_FOLDER}/minimal_dataset_v1.npz: it ")
    for fragment in damage.says:
        assert fragment in line, line
    assert line.endswith(
        f"; regenerated from builtin:synthetic-run1084, it matches {SHIPPED_SIDECAR}"
    )
    assert spec.path.read_bytes() == pristine.npz
    assert temporary_files(spec.path.parent) == []


@pytest.mark.parametrize("damage", NPZ_DAMAGE, ids=str)
def test_a_damaged_fixture_without_its_source_is_reported_with_the_fix_and_kept(
    tmp_path: Path, pristine: Pristine, damage: Damage
) -> None:
    damaged = damage.apply(pristine.npz)
    spec = _committed(tmp_path, pristine, damaged, tmp_path / MISSING_SOURCE)
    fixtures = FixtureCache(root=tmp_path)
    with pytest.raises(FixtureError) as caught:
        fixtures.get(spec)
    line = str(caught.value)
    assert line.startswith(f"ptycho-fixture: the fixture {FIXTURE} ")
    for fragment in damage.says:
        assert fragment in line, line
    assert line.endswith(
        f", and it cannot be regenerated: its source {MISSING_SOURCE} does not exist. Put the"
        f" source dataset at {MISSING_SOURCE} (or point ptycho_fixture_source /"
        f" --ptycho-fixture-source=PATH at it), or restore {FIXTURE} (e.g. git checkout {FIXTURE})"
    )
    assert fixtures.stats.generations == []
    assert spec.path.read_bytes() == damaged
    assert spec.sidecar.read_bytes() == pristine.sidecar


def test_a_run_shows_the_healing_and_a_test_shows_the_damage_it_cannot_heal(
    pytester: pytest.Pytester, pristine: Pristine
) -> None:
    damage = NPZ_DAMAGE[3]
    cached = pytester.path / CACHED_FOLDER / "minimal_dataset_v1.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(damage.apply(pristine.npz))
    pytester.makepyfile(USES_THE_FIXTURE)
    healed = pytester.runpytest()
    healed.assert_outcomes(passed=2)
    healed.stdout.fnmatch_lines(
        [
            "ptycho-fixture: 1 generation (main, * s), 1 verification, healed 1 cached file",
            (
                f"ptycho-fixture: healed {cached.relative_to(pytester.path)}: it was damaged"
                " ('diffraction' cannot be read (*); regenerated from builtin:synthetic-run1084,"
                " it matches *minimal_dataset_v1.json"
            ),
        ]
    )
    _committed(pytester.path, pristine, damage.apply(pristine.npz), None)
    pytester.makeini(
        f"[pytest]\nptycho_fixture_path = {FIXTURE}\nptycho_fixture_source = {MISSING_SOURCE}\n"
    )
    reported = pytester.runpytest()
    reported.assert_outcomes(errors=2)
    reported.stdout.fnmatch_lines(
        [
            (
                f"ptycho-fixture: the fixture {FIXTURE} was damaged ('diffraction' cannot be read"
                f" (*), and it cannot be regenerated: its source {MISSING_SOURCE} does not exist.*"
            )
        ]
    )
    assert "Traceback" not in reported.stdout.str()


@pytest.mark.slow
def test_any_flipped_bit_in_the_cached_fixture_is_healed_or_changes_no_content(
    tmp_path: Path, pristine: Pristine, stress: int
) -> None:
    """A seeded random bit anywhere in the file: either the content digest no longer
    matches (or the file no longer reads) and the fixture is regenerated, or the bit sat
    in a field no reader checks (a timestamp, a permission) and the content is intact."""
    rng = random.Random(SEED)
    spec = _default(tmp_path)
    outcomes = {"healed": 0, "content intact": 0}
    for _ in range(RANDOM_FLIPS * stress):
        data = _flip(pristine.npz, rng.randrange(len(pristine.npz)), rng.randrange(8))
        spec.path.write_bytes(data)
        intact = content_digest(spec.path) == pristine.digest
        fixtures = FixtureCache(root=tmp_path)
        verified = fixtures.get(spec)
        assert content_digest(spec.path) == pristine.digest
        assert verified.metadata["content_sha256"] == pristine.digest
        if intact:
            assert fixtures.stats.generations == [] and spec.path.read_bytes() == data
            outcomes["content intact"] += 1
        else:
            assert len(fixtures.stats.healed) == 1 and spec.path.read_bytes() == pristine.npz
            outcomes["healed"] += 1
    print(f"random bit flips in the cached fixture: {outcomes}, failures 0")


# ---------------------------------------------------------------------------- the sidecar


def _edit_content_digest(text: str) -> str:
    data = json.loads(text)
    digest = data["content_sha256"]
    data["content_sha256"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    return json.dumps(data, indent=2)


def _edit_array_digest(text: str) -> str:
    data = json.loads(text)
    entry = data["arrays"]["probeGuess"]
    entry["sha256"] = entry["sha256"][::-1]
    return json.dumps(data, indent=2)


def _other_fixtures_digests(other: dict[str, Any]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = json.loads(text)
        data["content_sha256"], data["arrays"] = other["content_sha256"], other["arrays"]
        return json.dumps(data, indent=2)

    return edit


HAND_EDITED = (
    (
        "the sidecar {sidecar} does not add up: its 'content_sha256' is {digest}... but its"
        " per-array digests combine to"
    ),
    (
        "; it was edited by hand or damaged; restore it (e.g. git checkout {sidecar}) or run"
        " pytest --regen-fixture and commit {sidecar}; it is never overwritten without"
        " --regen-fixture"
    ),
)


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        pytest.param(_edit_content_digest, HAND_EDITED, id="content digest edited"),
        pytest.param(_edit_array_digest, HAND_EDITED, id="an array digest edited"),
        pytest.param(
            lambda text: text[: len(text) // 3],
            ("is not valid JSON (line", "it is never overwritten without --regen-fixture"),
            id="broken JSON",
        ),
        pytest.param(
            None,
            (
                (
                    "the fixture generated from builtin:synthetic-run1084 does not match the"
                    " committed sidecar {sidecar}: content_sha256 expected"
                ),
                (
                    "The generator or the source changed; if that is intended, run pytest"
                    " --regen-fixture and commit {sidecar}"
                ),
            ),
            id="every digest replaced by another fixture's",
        ),
    ],
)
def test_a_hand_edited_sidecar_is_reported_and_only_regeneration_rewrites_it(
    tmp_path: Path,
    pristine: Pristine,
    edit: Callable[[str], str] | None,
    says: tuple[str, ...],
) -> None:
    spec = _committed(tmp_path / "project", pristine, pristine.npz, None)
    if edit is None:
        other = generate_fixture(None, tmp_path / "other.npz", 32).metadata_path
        edit = _other_fixtures_digests(json.loads(other.read_text(encoding="utf-8")))
    edited = edit(pristine.sidecar.decode()).encode()
    spec.sidecar.write_bytes(edited)
    with pytest.raises(FixtureError) as caught:
        FixtureCache(root=tmp_path / "project").get(spec)
    line = str(caught.value)
    digest = re.search(rb'"content_sha256": "(\w{12})', edited)
    for fragment in says:
        assert fragment.format(digest=digest and digest[1].decode(), sidecar=SIDECAR) in line
    assert spec.sidecar.read_bytes() == edited
    assert spec.path.read_bytes() == pristine.npz
    regenerated = FixtureCache(root=tmp_path / "project", regen=True)
    regenerated.regenerate(spec)
    assert regenerated.stats.rewritten == [SIDECAR]
    assert json.loads(spec.sidecar.read_text(encoding="utf-8"))["content_sha256"] == pristine.digest
