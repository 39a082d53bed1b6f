"""Content digests: their documented definition, what they see and what they ignore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import recompute_content_sha256, some_arrays
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from pytest_ptycho_fixture.npz.digests import content_digests, file_sha256
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.npz.writer import write_npz

# content_sha256 of {"a": np.arange(3, dtype="<i4")}: pins the digest definition itself.
# Recompute with: python -c "import numpy as np; from pytest_ptycho_fixture.npz.digests import
# content_digests; print(content_digests({'a': np.arange(3, dtype='<i4')})[0])"
TINY_CONTENT_SHA256 = "b3e3a02df0e7d42de8238c1a73504150e6ce26481cbc38e4500bb7277db5d73b"

_DTYPES = st.sampled_from(
    ["|b1", "|i1", "<u2", "<i4", ">i4", "<i8", "<f2", "<f4", ">f4", "<f8", ">f8", "<c8", ">c16"]
)


def test_the_content_digest_follows_its_documented_definition() -> None:
    arrays = some_arrays()
    content, per_array = content_digests(arrays)
    assert (content, per_array) == recompute_content_sha256(arrays)


def test_the_content_digest_of_a_tiny_array_is_pinned() -> None:
    assert content_digests({"a": np.arange(3, dtype="<i4")})[0] == TINY_CONTENT_SHA256


@pytest.mark.parametrize(
    "other",
    [
        {"a": np.arange(12, dtype=np.int32).reshape(4, 3)},
        {"a": np.arange(12, dtype=np.int32).view(np.float32).reshape(3, 4)},
        {"b": np.arange(12, dtype=np.int32).reshape(3, 4)},
    ],
    ids=["shape", "dtype", "key"],
)
def test_the_content_digest_sees_key_dtype_and_shape_not_only_the_bytes(
    other: dict[str, NDArray[Any]],
) -> None:
    base = {"a": np.arange(12, dtype=np.int32).reshape(3, 4)}
    assert other[next(iter(other))].tobytes() == base["a"].tobytes()
    assert content_digests(other)[0] != content_digests(base)[0]


def test_byte_order_and_memory_order_do_not_change_the_content_digest() -> None:
    values = np.arange(20.0).reshape(4, 5)
    plain = content_digests({"v": values})[0]
    assert content_digests({"v": values.astype(">f8")})[0] == plain
    assert content_digests({"v": np.asfortranarray(values)})[0] == plain


def test_compressed_and_stored_files_have_the_same_content_digest(tmp_path: Path) -> None:
    write_npz(tmp_path / "deflated.npz", some_arrays())
    write_npz(tmp_path / "stored.npz", some_arrays(), compress=False)
    deflated, stored = load_npz(tmp_path / "deflated.npz"), load_npz(tmp_path / "stored.npz")
    assert file_sha256(tmp_path / "deflated.npz") != file_sha256(tmp_path / "stored.npz")
    assert deflated.content_sha256 == stored.content_sha256
    assert deflated.content_sha256 == recompute_content_sha256(some_arrays())[0]
    assert deflated.array_sha256 == recompute_content_sha256(some_arrays())[1]


def test_changing_one_element_changes_the_content_digest_and_that_arrays_digest() -> None:
    arrays = some_arrays()
    before = content_digests(arrays)
    arrays["diffraction"] = arrays["diffraction"].copy()
    arrays["diffraction"][36, 5, 4] = np.nextafter(arrays["diffraction"][36, 5, 4], np.float32(9))
    after = content_digests(arrays)
    assert after[0] != before[0]
    assert [key for key in before[1] if before[1][key] != after[1][key]] == ["diffraction"]


@settings(max_examples=60, deadline=None)
@given(
    array=_DTYPES.flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(max_dims=3, max_side=6))
    ),
    data=st.data(),
)
def test_changing_any_one_element_changes_the_digest(array: NDArray[Any], data: Any) -> None:
    flat = data.draw(st.integers(0, array.size - 1))
    bit = data.draw(st.integers(0, array.dtype.itemsize * 8 - 1))
    changed = array.copy()
    raw = changed.reshape(-1).view(np.uint8).reshape(array.size, array.dtype.itemsize)
    raw[flat, bit // 8] ^= np.uint8(1 << (bit % 8))
    assert content_digests({"a": changed})[0] != content_digests({"a": array})[0]
