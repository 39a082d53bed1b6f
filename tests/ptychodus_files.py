"""Files in the layouts ptychodus 1.7 writes, made here with h5py and numpy: its CXI
product (probe at image_1, object at image_2, the rest under /entry_1/ptychodus), its
NPZ product, its ``diffraction.h5`` and its NPZ of patterns. Each holds the simulator's
scan, positions in metres around a centre that is not 0, patterns as intensities.

The clients' own test environment writes the same files with ptychodus itself
(tests/clients/); these let the suite check our readers without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5files import DETECTOR_PIXEL_M, DISTANCE_M, OBJECT_PIXEL_M, nhw_arrays
from numpy.typing import NDArray

ENERGY_EV = 8000.0
CENTRE_M = (1.5e-6, -2.5e-6)


def metres(a: Mapping[str, NDArray[Any]]) -> tuple[NDArray[Any], NDArray[Any]]:
    """The scan's positions in metres, in ptychodus' frame (an even probe)."""
    rows, cols = a["objectGuess"].shape
    x = (a["xcoords"] - cols / 2) * OBJECT_PIXEL_M + CENTRE_M[0]
    y = (a["ycoords"] - rows / 2) * OBJECT_PIXEL_M + CENTRE_M[1]
    return x, y


def write_cxi_product(path: Path, a: Mapping[str, NDArray[Any]] | None = None) -> Path:
    """ptychodus' CXI product: no patterns."""
    a = nhw_arrays() if a is None else a
    x, y = metres(a)
    n = len(x)
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        translation = np.zeros((n, 3))
        translation[:, 0], translation[:, 1] = x, y
        f["/entry_1/sample_1/geometry_1/translation"] = translation
        f["/entry_1/data_1/translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
        f["/entry_1/instrument_1/source_1/energy"] = ENERGY_EV * 1.602176634e-19
        f["/entry_1/instrument_1/detector_1/distance"] = DISTANCE_M
        f["/entry_1/image_1/data"] = a["probeGuess"][None, None].astype(np.complex64)
        f["/entry_1/instrument_1/source_1/illumination"] = h5py.SoftLink("/entry_1/image_1/data")
        f["/entry_1/image_2/data"] = a["objectGuess"][None].astype(np.complex64)
        kept = f.create_group("/entry_1/ptychodus")
        kept["probe_position_indexes"] = np.arange(n, dtype=np.int64)
        kept["object_center_x_m"], kept["object_center_y_m"] = CENTRE_M
        kept["object_pixel_width_m"] = kept["object_pixel_height_m"] = OBJECT_PIXEL_M
        kept["probe_pixel_width_m"] = kept["probe_pixel_height_m"] = OBJECT_PIXEL_M
    return path


def write_cxi_patterns(path: Path, a: Mapping[str, NDArray[Any]] | None = None) -> Path:
    """ptychodus' CXI diffraction file: intensities, distance, pixel, energy."""
    a = nhw_arrays() if a is None else a
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        detector = f.create_group("/entry_1/instrument_1/detector_1")
        detector.create_dataset("data", data=(a["diffraction"] ** 2).astype(np.float32), compression="lzf")
        detector["distance"] = DISTANCE_M
        detector["x_pixel_size"] = detector["y_pixel_size"] = DETECTOR_PIXEL_M
        detector["mask"] = np.zeros(a["diffraction"].shape[1:], dtype=np.uint32)
        f["/entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        f["/entry_1/instrument_1/source_1/energy"] = ENERGY_EV * 1.602176634e-19
    return path


def write_combined_cxi(path: Path, a: Mapping[str, NDArray[Any]] | None = None) -> Path:
    """The CXI product with its patterns in the same file (probe image_1, object image_2)."""
    a = nhw_arrays() if a is None else a
    write_cxi_product(path, a)
    with h5py.File(path, "a") as f:
        detector = f["/entry_1/instrument_1/detector_1"]
        detector.create_dataset("data", data=(a["diffraction"] ** 2).astype(np.float64))
        detector["x_pixel_size"] = detector["y_pixel_size"] = DETECTOR_PIXEL_M
        f["/entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
    return path


def write_npz_product(path: Path, a: Mapping[str, NDArray[Any]] | None = None) -> Path:
    """ptychodus' NPZ product (``numpy.savez``, as its writer calls it)."""
    a = nhw_arrays() if a is None else a
    x, y = metres(a)
    n = len(x)
    np.savez(
        path,
        name=np.str_("simulated"),
        comments=np.str_(""),
        detector_object_distance_m=np.float64(DISTANCE_M),
        photon_energy_eV=np.float64(ENERGY_EV),
        probe_photon_count=np.float64(0),
        exposure_time_s=np.float64(0),
        probe_position_indexes=np.arange(n, dtype=np.int64),
        probe_position_x_m=x,
        probe_position_y_m=y,
        probe=a["probeGuess"][None, None].astype(np.complex64),
        probe_pixel_width_m=np.float64(OBJECT_PIXEL_M),
        probe_pixel_height_m=np.float64(OBJECT_PIXEL_M),
        object=a["objectGuess"][None].astype(np.complex64),
        object_center_x_m=np.float64(CENTRE_M[0]),
        object_center_y_m=np.float64(CENTRE_M[1]),
        object_pixel_width_m=np.float64(OBJECT_PIXEL_M),
        object_pixel_height_m=np.float64(OBJECT_PIXEL_M),
        object_layer_spacing_m=np.zeros(0),
    )
    return path


def write_diffraction_h5(
    path: Path, a: Mapping[str, NDArray[Any]] | None = None, order: NDArray[Any] | None = None
) -> Path:
    """ptychodus' ``diffraction.h5``; ``order`` stores the patterns in another order of
    scan indexes."""
    a = nhw_arrays() if a is None else a
    intensities = (a["diffraction"] ** 2).astype(np.float32)
    indexes = np.arange(len(intensities), dtype=np.int64)
    if order is not None:
        intensities, indexes = intensities[order], indexes[order]
    with h5py.File(path, "w") as f:
        f.create_dataset("indexes", data=indexes, compression="lzf")
        patterns = f.create_dataset("patterns", data=intensities, compression="lzf")
        patterns.attrs["detector_pixel_width_m"] = DETECTOR_PIXEL_M
        patterns.attrs["detector_pixel_height_m"] = DETECTOR_PIXEL_M
        f.create_dataset("bad_pixels", data=np.zeros(intensities.shape[1:], bool), compression="lzf")
    return path


def write_npz_patterns(path: Path, a: Mapping[str, NDArray[Any]] | None = None) -> Path:
    """ptychodus' NPZ of patterns (``numpy.savez_compressed``)."""
    a = nhw_arrays() if a is None else a
    intensities = (a["diffraction"] ** 2).astype(np.float32)
    np.savez_compressed(
        path,
        indexes=np.arange(len(intensities), dtype=np.int64),
        patterns=intensities,
        bad_pixels=np.zeros(intensities.shape[1:], bool),
    )
    return path
