"""The JSON sidecar: read it, write it atomically, compare a fixture's digests with it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import write_bytes
from ..contract import ContractError
from .digests import combine_digests

if TYPE_CHECKING:
    from .reader import LoadedNpz

SIDECAR_VERSION = "v1"


def default_sidecar_path(fixture: Path) -> Path:
    """The sidecar that goes with ``fixture``: the same name with ``.json``."""
    return Path(fixture).with_suffix(".json")


def dumps(metadata: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON, sorted keys, indent 2, final newline."""
    return (json.dumps(metadata, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def write_sidecar(path: Path, metadata: Mapping[str, Any]) -> None:
    """Atomically write ``metadata`` to ``path``."""
    write_bytes(Path(path), dumps(metadata))


def read_sidecar(path: Path) -> dict[str, Any]:
    """Load a sidecar, checking the fields a verification needs."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(path, None, "does not exist") from None
    except IsADirectoryError:
        raise ContractError(path, None, "is a directory but a JSON sidecar is required") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(path, None, f"cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(
            path, None, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise ContractError(path, None, f"holds a JSON {type(data).__name__}, not an object")
    digest = data.get("content_sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise ContractError(
            path,
            "content_sha256",
            f"'content_sha256' is {digest!r} but a 64-digit SHA-256 is required",
        )
    arrays = data.get("arrays")
    if not isinstance(arrays, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
        for entry in arrays.values()
    ):
        raise ContractError(path, "arrays", "'arrays' must map each key to {shape, dtype, sha256}")
    combined = combine_digests({key: entry["sha256"] for key, entry in arrays.items()})
    if combined != digest:
        raise ContractError(
            path,
            "content_sha256",
            f"does not add up: its 'content_sha256' is {digest[:12]}... but its per-array"
            f" digests combine to {combined[:12]}...; it was edited by hand or damaged",
        )
    return data


def array_table(
    arrays: Mapping[str, Any], array_sha256: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The sidecar's ``arrays`` entry: key -> shape, dtype, sha256."""
    return {
        key: {
            "dtype": str(arrays[key].dtype),
            "shape": list(arrays[key].shape),
            "sha256": array_sha256[key],
        }
        for key in sorted(arrays)
    }


def differing_arrays(
    expected: Mapping[str, Any],
    array_sha256: Mapping[str, str],
    arrays: Mapping[str, Any] | None = None,
) -> list[str]:
    """Describe each array whose digest differs from the sidecar's (missing and extra too).

    With the ``arrays`` themselves, a dtype or shape other than the recorded one is named.
    """
    table = expected.get("arrays", {})
    recorded = {key: entry["sha256"] for key, entry in table.items()}
    notes = []
    for key in sorted(set(recorded) | set(array_sha256)):
        want, got = recorded.get(key), array_sha256.get(key)
        if want == got:
            continue
        if got is None:
            notes.append(f"{key} (missing)")
        elif want is None:
            notes.append(f"{key} (not in the sidecar)")
        else:
            change = _layout_change(table[key], arrays, key)
            notes.append(f"{key} ({change}expected {want[:12]}, got {got[:12]})")
    return notes


def _layout_change(entry: Mapping[str, Any], arrays: Mapping[str, Any] | None, key: str) -> str:
    if arrays is None or key not in arrays:
        return ""
    array = arrays[key]
    changes = []
    if entry.get("dtype") not in (None, str(array.dtype)):
        changes.append(f"dtype {array.dtype}, the sidecar says {entry['dtype']}")
    if entry.get("shape") not in (None, list(array.shape)):
        changes.append(f"shape {tuple(array.shape)}, the sidecar says {tuple(entry['shape'])}")
    return "".join(f"{change}; " for change in changes)


@dataclass(frozen=True)
class Checked:
    """A fixture read and checked against its sidecar (``verify``, ``push``, ``export``)."""

    fixture: LoadedNpz
    sidecar: Path
    expected: dict[str, Any]
    #: How the fixture differs from its sidecar, in words; ``None``: it matches.
    mismatch: str | None


def check_against_sidecar(path: Path, sidecar: Path | None = None) -> Checked:
    """Read the fixture at ``path`` and its sidecar (default: ``path`` with ``.json``) and
    compare their content digests; a fixture that matches must keep the data contract.

    The fixture is read first: when it is missing, that is what to name, not its sidecar.
    """
    from ..contract import validate_fixture
    from ..messages import digest_mismatch
    from .reader import load_npz

    loaded = load_npz(path)
    sidecar_path = sidecar or default_sidecar_path(path)
    expected = read_sidecar(sidecar_path)
    if loaded.content_sha256 != expected["content_sha256"]:
        differ = differing_arrays(expected, loaded.array_sha256, loaded.arrays)
        mismatch = digest_mismatch(expected["content_sha256"], loaded.content_sha256, differ)
        return Checked(loaded, sidecar_path, expected, mismatch)
    validate_fixture(path, loaded.arrays)
    return Checked(loaded, sidecar_path, expected, None)
