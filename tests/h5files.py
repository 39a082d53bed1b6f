"""Real HDF5 sources written with h5py: CXI files, ptychodus product files, mapped layouts.

Each is the simulator's scan (the one the NPZ sources hold) in another container: CXI
stores intensities ``amplitude**2`` and translations in metres, the product positions in
metres around its object's centre. Converting back must give the NPZ's arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from pytest_ptycho_fixture.simulate import simulate_source

#: 8 keV, 0.75 m, 75 um pixels: an APS-like geometry; the object pixel follows from them.
ENERGY_J = 8000 * 1.602176634e-19
DISTANCE_M = 0.75
DETECTOR_PIXEL_M = 75e-6
DETECTOR = 64
WAVELENGTH_M = 6.62607015e-34 * 299792458.0 / ENERGY_J
OBJECT_PIXEL_M = WAVELENGTH_M * DISTANCE_M / (DETECTOR * DETECTOR_PIXEL_M)
#: The product's object sits here, so that positions are not simply centred on 0.
PRODUCT_CENTRE_M = (3.5e-6, -1.25e-6)
DATA = "/entry_1/data_1/data"
TRANSLATION = "/entry_1/sample_1/geometry_1/translation"
ILLUMINATION = "/entry_1/instrument_1/source_1/illumination"
IMAGE = "/entry_1/image_1/data"
MAPPED = {
    "diffraction": "/scan/amplitudes",
    "xcoords": "/scan/x_px",
    "ycoords": "/scan/y_px",
    "probeGuess": "/guess/probe",
    "objectGuess": "/guess/object",
}
MAPPED_TEXT = ",".join(f"{key}={where}" for key, where in MAPPED.items())


def nhw_arrays(positions: int = 100) -> dict[str, NDArray[Any]]:
    """The simulator's scan of ``positions``, patterns (N, H, W)."""
    return simulate_source(positions=positions, layout="NHW")


def storage(kind: str) -> dict[str, Any]:
    """``create_dataset`` keywords for the patterns: contiguous, chunked, or compressed."""
    kinds: dict[str, dict[str, Any]] = {
        "contiguous": {},
        "chunked": {"chunks": (1, DETECTOR, DETECTOR)},
        "gzip": {"chunks": (4, DETECTOR, DETECTOR), "compression": "gzip", "shuffle": True},
        "lzf": {"chunks": (2, DETECTOR, DETECTOR), "compression": "lzf", "shuffle": True},
    }
    return kinds[kind]


def write_cxi(
    path: Path,
    arrays: Mapping[str, NDArray[Any]] | None = None,
    *,
    kind: str = "contiguous",
    scale: float = 1.0,
    image: bool = True,
    probe: bool = True,
    edit: Callable[[h5py.File], None] | None = None,
    data: Callable[[h5py.File], None] | None = None,
) -> Path:
    """A CXI 1.6 file of the scan: intensities ``scale * amplitude**2``, translations in m.

    With ``image`` the object guess is stored at ``entry_1/image_1`` and the translations
    are relative to its centre; ``edit`` changes the file before it is closed; ``data``,
    if given, writes the patterns' dataset instead (space once written stays in a file).
    """
    a = nhw_arrays() if arrays is None else arrays
    rows, cols = a["objectGuess"].shape
    translation = np.zeros((a["xcoords"].shape[0], 3))
    translation[:, 0] = (a["xcoords"] - cols / 2) * OBJECT_PIXEL_M
    translation[:, 1] = (a["ycoords"] - rows / 2) * OBJECT_PIXEL_M
    with h5py.File(path, "w") as f:
        f.attrs["cxi_version"] = 160
        if data is None:
            f.create_dataset(DATA, data=scale * a["diffraction"] ** 2, **storage(kind))
        else:
            data(f)
        f[TRANSLATION] = translation
        f["/entry_1/data_1/translation"] = h5py.SoftLink(TRANSLATION)
        detector = f.create_group("/entry_1/instrument_1/detector_1")
        detector["distance"] = DISTANCE_M
        detector["x_pixel_size"] = DETECTOR_PIXEL_M
        detector["y_pixel_size"] = DETECTOR_PIXEL_M
        f["/entry_1/instrument_1/source_1/energy"] = ENERGY_J
        if probe:
            f[ILLUMINATION] = a["probeGuess"]
        if image:
            f[IMAGE] = a["objectGuess"]
        if edit is not None:
            edit(f)
    return path


def write_product(
    path: Path,
    arrays: Mapping[str, NDArray[Any]] | None = None,
    *,
    edit: Callable[[h5py.File], None] | None = None,
) -> Path:
    """A ptychodus product file of the scan (specs/data_contracts.md), without patterns."""
    a = nhw_arrays() if arrays is None else arrays
    rows, cols = a["objectGuess"].shape
    cx, cy = PRODUCT_CENTRE_M
    with h5py.File(path, "w") as f:
        f.attrs["name"] = "simulated"
        f.attrs["comments"] = ""
        f.attrs["detector_object_distance_m"] = DISTANCE_M
        f.attrs["probe_energy_eV"] = 8000.0
        f.attrs["exposure_time_s"] = 0.1
        n = a["xcoords"].shape[0]
        f["probe_position_indexes"] = np.arange(n, dtype=np.int64)
        f["probe_position_x_m"] = (a["xcoords"] - cols / 2) * OBJECT_PIXEL_M + cx
        f["probe_position_y_m"] = (a["ycoords"] - rows / 2) * OBJECT_PIXEL_M + cy
        probe = f.create_dataset("probe", data=a["probeGuess"][None, None].astype(np.complex64))
        probe.attrs["pixel_width_m"] = OBJECT_PIXEL_M
        probe.attrs["pixel_height_m"] = OBJECT_PIXEL_M
        obj = f.create_dataset("object", data=a["objectGuess"][None].astype(np.complex64))
        obj.attrs["center_x_m"] = cx
        obj.attrs["center_y_m"] = cy
        obj.attrs["pixel_width_m"] = OBJECT_PIXEL_M
        obj.attrs["pixel_height_m"] = OBJECT_PIXEL_M
        f["object_layer_spacing_m"] = np.array([], dtype=np.float64)
        f["loss_values"] = np.array([1.0, 0.5])
        if edit is not None:
            edit(f)
    return path


def write_mapped(
    path: Path,
    arrays: Mapping[str, NDArray[Any]] | None = None,
    *,
    kind: str = "contiguous",
) -> Path:
    """The scan in a layout of its own (see :data:`MAPPED`): legacy (H, W, N) amplitudes."""
    a = nhw_arrays() if arrays is None else arrays
    with h5py.File(path, "w") as f:
        hwn = np.ascontiguousarray(a["diffraction"].transpose(1, 2, 0))
        chunks = {} if kind == "contiguous" else {"chunks": (DETECTOR, DETECTOR, 1)}
        f.create_dataset(MAPPED["diffraction"], data=hwn, **chunks)
        f[MAPPED["xcoords"]] = a["xcoords"]
        f[MAPPED["ycoords"]] = a["ycoords"]
        f[MAPPED["probeGuess"]] = a["probeGuess"]
        f[MAPPED["objectGuess"]] = a["objectGuess"]
    return path


def replace_dataset(f: h5py.File, name: str, value: Any, **options: Any) -> None:
    """Put ``value`` (an array, or a link) where ``name`` was."""
    del f[name]
    if isinstance(value, (h5py.SoftLink, h5py.ExternalLink)):
        f[name] = value
    else:
        f.create_dataset(name, data=value, **options)


# ---------------------------------------------------------------------- hostile files


def _other_file(folder: Path) -> Path:
    """A readable HDF5 file beside the source, so that following a link would succeed."""
    other = folder / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = nhw_arrays()["diffraction"] ** 2
    return other


def external_link(folder: Path) -> Path:
    _other_file(folder)
    return write_cxi(
        folder / "source.cxi",
        edit=lambda f: replace_dataset(f, DATA, h5py.ExternalLink("other.h5", "/data")),
    )


def virtual_outside(folder: Path) -> Path:
    _other_file(folder)

    def edit(f: h5py.File) -> None:
        del f[DATA]
        layout = h5py.VirtualLayout(shape=(100, DETECTOR, DETECTOR), dtype="<f8")
        layout[:] = h5py.VirtualSource("other.h5", "/data", shape=(100, DETECTOR, DETECTOR))
        f.create_virtual_dataset(DATA, layout)

    return write_cxi(folder / "source.cxi", edit=edit)


def external_storage(folder: Path) -> Path:
    intensities = nhw_arrays()["diffraction"] ** 2
    (folder / "raw.bin").write_bytes(intensities.astype("<f8").tobytes())

    def edit(f: h5py.File) -> None:
        del f[DATA]
        f.create_dataset(
            DATA,
            shape=intensities.shape,
            dtype="<f8",
            external=[("raw.bin", 0, intensities.nbytes)],
        )

    return write_cxi(folder / "source.cxi", edit=edit)


def unknown_filter(folder: Path) -> Path:
    """lzf (filter 32000) in the file, its id then rewritten to 32123, which nobody registers."""
    path = write_cxi(folder / "source.cxi", kind="lzf")
    data = bytearray(path.read_bytes())
    # A version-2 filter description: id (2 bytes), name length, flags, value count, name.
    at = data.find(b"lzf\x00")
    assert at > 8 and data[at - 8 : at - 6] == (32000).to_bytes(2, "little"), "no lzf filter"
    data[at - 8 : at - 6] = (32123).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


def huge_chunks(folder: Path) -> Path:
    """One 1 GiB chunk, in a file of about 100 kB (no object guess)."""

    def data(f: h5py.File) -> None:
        f.create_dataset(
            DATA,
            shape=(100, DETECTOR, DETECTOR),
            maxshape=(None, None, None),
            dtype="<f4",
            chunks=(64, 2048, 2048),
        )

    return write_cxi(folder / "source.cxi", image=False, data=data)


def declared_beyond_stored(chunked: bool) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        def data(f: h5py.File) -> None:
            chunks = {"chunks": (1, DETECTOR, DETECTOR)} if chunked else {}
            f.create_dataset(DATA, shape=(10**6, DETECTOR, DETECTOR), dtype="<f4", **chunks)

        return write_cxi(folder / "source.cxi", data=data)

    return build


def references(folder: Path) -> Path:
    def edit(f: h5py.File) -> None:
        refs = f.create_dataset(DATA, shape=(100,), dtype=h5py.ref_dtype)
        refs[0] = f[TRANSLATION].ref

    return write_cxi(folder / "source.cxi", data=lambda f: None, edit=edit)


def link_cycle(folder: Path) -> Path:
    def edit(f: h5py.File) -> None:
        replace_dataset(f, DATA, h5py.SoftLink("/entry_1/data_1/loop"))
        f["/entry_1/data_1/loop"] = h5py.SoftLink(DATA)

    return write_cxi(folder / "source.cxi", edit=edit)


def with_intensities(change: Callable[[NDArray[Any]], NDArray[Any]]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        intensities = change(nhw_arrays()["diffraction"] ** 2)
        return write_cxi(
            folder / "source.cxi", edit=lambda f: replace_dataset(f, DATA, intensities)
        )

    return build


def with_value_at(index: tuple[int, ...], value: float) -> Callable[[Path], Path]:
    def change(intensities: NDArray[Any]) -> NDArray[Any]:
        changed: NDArray[Any] = intensities.copy()
        changed[index] = value
        return changed

    return with_intensities(change)


def with_dataset(name: str, value: Any) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        if value is None:
            return write_cxi(folder / "source.cxi", edit=lambda f: f.__delitem__(name))
        return write_cxi(folder / "source.cxi", edit=lambda f: replace_dataset(f, name, value))

    return build


def truncated(folder: Path) -> Path:
    path = write_cxi(folder / "source.cxi")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def unknown_layout(folder: Path) -> Path:
    with h5py.File(folder / "source.h5", "w") as f:
        f["whatever"] = np.zeros(3)
    return folder / "source.h5"


def mapped_without(key: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = write_mapped(folder / "source.h5")
        with h5py.File(path, "a") as f:
            del f[MAPPED[key]]
        return path

    return build
