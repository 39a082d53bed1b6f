"""Tests of the fixture cache: spec resolution, the lock protocol, healing, run records."""

from __future__ import annotations

import json
import types
from pathlib import Path

import filelock
import pytest

from pytest_ptycho_fixture.cache import FixtureCache
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.messages import FixtureError
from pytest_ptycho_fixture.runrecord import StaleRecord
from pytest_ptycho_fixture.spec import (
    SHIPPED_SIDECAR,
    FixtureSpec,
    cached_spec,
    main_spec,
    parameters_key,
)
from pytest_ptycho_fixture.stats import Stats


def test_a_zero_configuration_uses_the_cache_folder_and_the_shipped_sidecar(
    tmp_path: Path,
) -> None:
    spec = main_spec(
        path=None, sidecar=None, source=None, subset_size=64, strategy="stratified", folder=tmp_path
    )
    assert spec == FixtureSpec(tmp_path / "minimal_dataset_v1.npz", SHIPPED_SIDECAR)
    assert spec.shipped and spec.committed
    assert SHIPPED_SIDECAR.is_file()


def test_a_configured_path_is_checked_against_the_sidecar_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "tests" / "fixtures" / "minimal_dataset_v1.npz"
    spec = main_spec(
        path=path, sidecar=None, source=None, subset_size=64, strategy="stratified", folder=tmp_path
    )
    assert spec.sidecar == path.with_suffix(".json") and spec.committed
    assert spec.lock_path == path.with_name("minimal_dataset_v1.npz.lock")


def test_other_parameters_without_a_path_get_a_sidecar_made_in_the_cache(tmp_path: Path) -> None:
    spec = main_spec(
        path=None, sidecar=None, source=None, subset_size=32, strategy="first", folder=tmp_path
    )
    assert spec == cached_spec(tmp_path, None, 32, "first")
    assert not spec.committed and spec.sidecar == spec.path.with_suffix(".json")
    assert spec.path.name == f"minimal_dataset_v1-{parameters_key(None, 32, 'first')}.npz"
    assert parameters_key(None, 32, "first") != parameters_key(None, 32, "stratified")


def test_the_summary_counts_generations_and_verifications() -> None:
    stats = Stats(generations=[("gw2", 0.0812)], verifications=1, devices=["cpu"])
    stats.merge(Stats(verifications=3, devices=["cpu"]).to_dict())
    assert stats.summary() == [
        "ptycho-fixture: 1 generation (gw2, 0.08 s), 4 verifications, device cpu"
    ]
    assert Stats().summary() == []


def _committed(tmp_path: Path, subset_size: int = 64) -> FixtureSpec:
    path = tmp_path / "minimal_dataset_v1.npz"
    generate_fixture(None, path, subset_size)
    path.unlink()
    return FixtureSpec(path, path.with_suffix(".json"))


def test_it_generates_once_and_the_next_process_only_verifies(tmp_path: Path) -> None:
    spec = _committed(tmp_path)
    first, second = FixtureCache(worker="gw0"), FixtureCache(worker="gw1")
    assert first.get(spec).spec.path.is_file()
    assert second.get(spec).metadata["content_sha256"] == first.get(spec).metadata["content_sha256"]
    assert [who for who, _ in first.stats.generations] == ["gw0"]
    assert second.stats.generations == [] and second.stats.verifications == 1


def test_it_hands_out_read_only_metadata_and_arrays(tmp_path: Path) -> None:
    verified = FixtureCache().get(_committed(tmp_path))
    assert isinstance(verified.metadata, types.MappingProxyType)
    assert isinstance(verified.metadata["arrays"], types.MappingProxyType)
    assert isinstance(verified.metadata["subset_indices"], tuple)
    assert not any(array.flags.writeable for array in verified.arrays.values())


def test_a_stale_fixture_is_regenerated_once_per_run(tmp_path: Path) -> None:
    stale = _committed(tmp_path, subset_size=32)
    spec = FixtureSpec(stale.path, stale.sidecar, subset_size=64)
    records = tmp_path / "cache"
    first, second = (FixtureCache(record=StaleRecord(records, "run-a")) for _ in range(2))
    with pytest.raises(FixtureError) as failure:
        first.get(spec)
    with pytest.raises(FixtureError) as again:
        second.get(spec)
    assert str(again.value) == str(failure.value)
    assert len(first.stats.generations) == 1 and second.stats.generations == []
    later = FixtureCache(record=StaleRecord(records, "run-b"))
    with pytest.raises(FixtureError):
        later.get(spec)
    assert len(later.stats.generations) == 1


def test_a_regeneration_run_remakes_a_cache_variant_once(tmp_path: Path) -> None:
    spec = cached_spec(tmp_path, None, 32, "stratified")
    FixtureCache().get(spec)
    first, second = (FixtureCache(run_id="regen", regen=True) for _ in range(2))
    first.get(spec)
    second.get(spec)
    assert len(first.stats.generations) == 1 and second.stats.generations == []
    assert json.loads(spec.sidecar.read_text())["cache_run"] == "regen"


def test_it_removes_temporary_files_left_by_a_killed_writer(tmp_path: Path) -> None:
    spec = _committed(tmp_path)
    leftover = tmp_path / ".minimal_dataset_v1.npz.k1ll3d.tmp"
    leftover.write_bytes(b"partial")
    other = tmp_path / ".other.npz.k1ll3d.tmp"
    other.write_bytes(b"not ours")
    FixtureCache().get(spec)
    assert not leftover.exists() and other.exists()


def test_a_lock_held_elsewhere_times_out_naming_the_lock_file(tmp_path: Path) -> None:
    spec = _committed(tmp_path)
    with filelock.FileLock(spec.lock_path), pytest.raises(FixtureError) as excinfo:
        FixtureCache(lock_timeout=0.2).get(spec)
    message = str(excinfo.value)
    assert f"waited 0.2 s for the lock {spec.lock_path}" in message
    assert "ptycho_fixture_lock_timeout" in message


def test_reload_reads_the_verified_fixture_again(tmp_path: Path) -> None:
    fixtures = FixtureCache()
    spec = _committed(tmp_path)
    verified = fixtures.get(spec)
    fresh = fixtures.reload(spec)
    assert fresh["diffraction"] is not verified.arrays["diffraction"]
    assert (fresh["diffraction"] == verified.arrays["diffraction"]).all()
