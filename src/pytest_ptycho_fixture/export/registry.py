"""Which writer a format names: one table, :data:`KNOWN_FORMATS`, consulted by
:func:`export_fixture`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..contract import ContractError
from ..spec import parse_export_format
from . import cxi, ptychodus
from .base import Exported, load

if TYPE_CHECKING:
    from ..geometry import Geometry

#: Each format, the writer of its files, and what ``--output`` names for it.
KNOWN_FORMATS: dict[str, tuple[Callable[[Exported, Path], list[Path]], str]] = {
    "ptychodus": (ptychodus.write, "a folder, which gets product.h5 and diffraction.h5"),
    "cxi": (cxi.write, "a .cxi file"),
}


def export_fixture(
    fixture: Path,
    format: str,
    output: Path,
    *,
    sidecar: Path | None = None,
    geometry: Geometry | None = None,
) -> list[Path]:
    """Write the fixture at ``fixture``, verified against its sidecar, in ``format``;
    return the files written. ``geometry`` places a fixture whose sidecar records none.

    Raises :class:`.base.Mismatch` for a fixture that does not match its sidecar,
    :class:`..spec.OptionError` for a format that is not one of :data:`KNOWN_FORMATS`, and
    :class:`..contract.ContractError` for input that is refused; nothing is written then.
    """
    write, _ = KNOWN_FORMATS[parse_export_format(format, "format")]
    try:
        import h5py  # noqa: F401 - each format is an HDF5 file
    except ImportError:
        raise ContractError(
            output,
            None,
            f"is to be written as {format}, an HDF5 format, which needs h5py:"
            " pip install 'pytest-ptycho-fixture[hdf5]'",
        ) from None
    return write(load(fixture, sidecar, geometry), output)
