"""Properties of what the cache relies on, for any input hypothesis draws: the reader
refuses damaged files with a ContractError and nothing else, a changed element is named by
its array, a hand-edited digest is caught, and a sweep removes only dead writers' files.

Round trips, the stratified indices and the digest of a changed element are in
tests/test_npzread.py, tests/test_digests.py and tests/test_generate.py."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from pytest_ptycho_fixture.atomic import remove_stale_temps
from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.npz.digests import content_digests
from pytest_ptycho_fixture.npz.reader import NpzReader, load_npz
from pytest_ptycho_fixture.npz.sidecar import (
    array_table,
    differing_arrays,
    read_sidecar,
    write_sidecar,
)
from pytest_ptycho_fixture.npz.writer import write_npz

_KEYS = st.sampled_from(["diffraction", "probeGuess", "objectGuess", "xcoords", "a", "b_2"])
_ARRAYS = st.sampled_from(["<f4", "<f8", "<c8", "<i8", "|u1"]).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6))
)
_DICTS = st.dictionaries(_KEYS, _ARRAYS, min_size=1, max_size=4)


def _damaged(data: bytes, kind: int, where: int, value: int) -> bytes:
    """One flipped bit, a truncation, or eight overwritten bytes, at a drawn place."""
    position = where % len(data)
    if kind == 0:
        changed = bytearray(data)
        changed[position] ^= 1 << (value % 8)
        return bytes(changed)
    if kind == 1:
        return data[:position]
    return data[:position] + value.to_bytes(8, "little") + data[position + 8 :]


@settings(max_examples=150, deadline=None)
@given(
    arrays=_DICTS,
    compress=st.booleans(),
    kind=st.integers(0, 2),
    where=st.integers(0, 1 << 20),
    value=st.integers(0, (1 << 64) - 1),
)
def test_a_damaged_npz_is_refused_with_a_contract_error_or_read_as_what_it_holds(
    arrays: dict[str, NDArray[Any]], compress: bool, kind: int, where: int, value: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.npz"
        write_npz(path, arrays, compress=compress)
        original = load_npz(path).content_sha256
        path.write_bytes(_damaged(path.read_bytes(), kind, where, value))
        try:
            loaded = load_npz(path)
        except ContractError:
            loaded = None
        if loaded is not None and loaded.content_sha256 == original:
            assert sorted(loaded.arrays) == sorted(arrays)
            for key, array in arrays.items():
                assert np.array_equal(loaded.arrays[key], array, equal_nan=True)
        key = min(arrays)
        try:
            with NpzReader(path) as reader:
                if key in reader and reader.member(key).shape:
                    reader.take(key, 0, [0] if reader.member(key).shape[0] else [])
        except ContractError:
            pass


@settings(max_examples=100, deadline=None)
@given(arrays=_DICTS, data=st.data())
def test_a_change_to_any_one_element_is_named_by_exactly_its_array(
    arrays: dict[str, NDArray[Any]], data: Any
) -> None:
    key = data.draw(st.sampled_from(sorted(arrays)))
    array = arrays[key]
    if array.size == 0:
        return
    flat = data.draw(st.integers(0, array.size - 1))
    bit = data.draw(st.integers(0, array.dtype.itemsize * 8 - 1))
    changed = array.copy()
    raw = changed.reshape(-1).view(np.uint8).reshape(array.size, array.dtype.itemsize)
    raw[flat, bit // 8] ^= np.uint8(1 << (bit % 8))
    content, per_array = content_digests(arrays)
    recorded = {"content_sha256": content, "arrays": array_table(arrays, per_array)}
    _, now = content_digests({**arrays, key: changed})
    (note,) = differing_arrays(recorded, now, {**arrays, key: changed})
    assert note.startswith(f"{key} (expected {per_array[key][:12]}, got {now[key][:12]})")


@settings(max_examples=100, deadline=None)
@given(arrays=_DICTS, data=st.data())
def test_any_one_character_edit_to_a_digest_in_the_sidecar_is_refused(
    arrays: dict[str, NDArray[Any]], data: Any
) -> None:
    content, per_array = content_digests(arrays)
    metadata = {"content_sha256": content, "arrays": array_table(arrays, per_array)}
    which = data.draw(st.sampled_from(["content_sha256", *sorted(arrays)]))
    position = data.draw(st.integers(0, 63))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.json"
        write_sidecar(path, metadata)
        assert read_sidecar(path)["content_sha256"] == content
        edited = json.loads(path.read_text(encoding="utf-8"))
        entry = edited if which == "content_sha256" else edited["arrays"][which]
        field = "content_sha256" if which == "content_sha256" else "sha256"
        digit = entry[field][position]
        other = data.draw(st.sampled_from([c for c in "0123456789abcdef" if c != digit]))
        entry[field] = entry[field][:position] + other + entry[field][position + 1 :]
        path.write_text(json.dumps(edited), encoding="utf-8")
        with pytest.raises(ContractError, match="does not add up"):
            read_sidecar(path)


@settings(max_examples=60, deadline=None)
@given(
    live=st.integers(0, 3),
    stale=st.integers(0, 3),
    others=st.lists(
        st.sampled_from(
            [".other.npz.x1.tmp", "f.npz", "f.npz.lock", ".f.npz.tmp", "f.npz.x.tmp", ".f.npz"]
        ),
        unique=True,
    ),
)
def test_a_sweep_removes_exactly_the_temporary_files_no_live_writer_holds(
    live: int, stale: int, others: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "f.npz"
        held = []
        for k in range(live):
            fd = os.open(target.with_name(f".f.npz.live{k}.tmp"), os.O_CREAT | os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.append(fd)
        for k in range(stale):
            target.with_name(f".f.npz.dead{k}.tmp").write_bytes(b"partial")
        for name in others:
            target.with_name(name).write_bytes(b"")
        try:
            removed = remove_stale_temps(target)
        finally:
            for fd in held:
                os.close(fd)
        assert sorted(path.name for path in removed) == [
            f".f.npz.dead{k}.tmp" for k in range(stale)
        ]
        assert sorted(os.listdir(folder)) == sorted(
            [*others, *(f".f.npz.live{k}.tmp" for k in range(live))]
        )
