"""The fixture as ptychodus 1.7 writes and reads a reconstruction's input: a product
file (``product.h5``: positions in metres, probe, object, geometry) and its patterns
(``diffraction.h5``: intensities with their scan indexes and the detector pixel), the
pair its batch mode reads from one folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..atomic import atomic_writer, parents_made
from .base import in_memory

if TYPE_CHECKING:
    from .base import Exported

PRODUCT = "product.h5"
DIFFRACTION = "diffraction.h5"


def write(fixture: Exported, output: Path) -> list[Path]:
    """Write ``product.h5`` and ``diffraction.h5`` into the folder ``output``."""
    import numpy as np

    product, diffraction = output / PRODUCT, output / DIFFRACTION
    for target in (product, diffraction):
        if target.is_dir():
            raise IsADirectoryError(21, "is a directory, not a file", str(target))
    x_m, y_m = fixture.metres()
    indexes = np.arange(len(x_m), dtype=np.int64)
    product_bytes = in_memory(lambda handle: _write_product(handle, fixture, indexes, x_m, y_m))
    patterns_bytes = in_memory(lambda handle: _write_patterns(handle, fixture, indexes))
    # The product is written first, outside the patterns' writer, so that a failure names
    # the file it happened to; the patterns take their name first, then the product.
    with parents_made(product, diffraction), atomic_writer(product) as handle:
        handle.write(product_bytes)
        with atomic_writer(diffraction) as patterns:
            patterns.write(patterns_bytes)
    return [product, diffraction]


def _write_product(handle: Any, fixture: Exported, indexes: Any, x_m: Any, y_m: Any) -> None:
    """ptychodus' ``save_product``: the attributes and datasets it writes, in its order."""
    import h5py
    import numpy as np

    geometry, arrays = fixture.geometry, fixture.arrays
    (px, py), (cx, cy) = fixture.object_pixel_m, fixture.object_center_m
    with h5py.File(handle, "w") as h5:
        h5.attrs["name"] = fixture.path.stem
        h5.attrs["comments"] = f"pytest-ptycho-fixture: {fixture.metadata['content_sha256']}"
        h5.attrs["detector_object_distance_m"] = geometry.distance_m
        h5.attrs["photon_energy_eV"] = geometry.energy_ev
        for zero in (
            "probe_photon_count",
            "exposure_time_s",
            "mass_attenuation_m2_per_kg",
            "tomography_angle_deg",
            "focus_object_distance_m",
            "tilt_angle_deg",
        ):
            h5.attrs[zero] = 0.0
        h5.attrs["far_field"] = True
        h5.create_dataset("probe_position_indexes", data=indexes)
        h5.create_dataset("probe_position_x_m", data=x_m)
        h5.create_dataset("probe_position_y_m", data=y_m)
        probe = h5.create_dataset("probe", data=arrays[c.PROBE][None, None])
        probe.attrs["pixel_width_m"] = px
        probe.attrs["pixel_height_m"] = py
        obj = h5.create_dataset("object", data=arrays[c.OBJECT][None])
        obj.attrs["center_x_m"] = cx
        obj.attrs["center_y_m"] = cy
        obj.attrs["pixel_width_m"] = px
        obj.attrs["pixel_height_m"] = py
        h5.create_dataset("object_layer_spacing_m", data=np.zeros(0, dtype=np.float64))
        h5.create_dataset("loss_epochs", data=np.zeros(0, dtype=np.float64))
        h5.create_dataset("loss_values", data=np.zeros(0, dtype=np.float64))


def _write_patterns(handle: Any, fixture: Exported, indexes: Any) -> None:
    """ptychodus' ``save_diffraction_data``: lzf-compressed, as it writes them."""
    import h5py
    import numpy as np

    with h5py.File(handle, "w") as h5:
        h5.create_dataset("indexes", data=indexes, compression="lzf")
        patterns = h5.create_dataset("patterns", data=fixture.intensities(), compression="lzf")
        patterns.attrs["detector_pixel_width_m"] = fixture.geometry.pixel_m[0]
        patterns.attrs["detector_pixel_height_m"] = fixture.geometry.pixel_m[1]
        bad = np.zeros(fixture.detector, dtype=bool)
        h5.create_dataset("bad_pixels", data=bad, compression="lzf")
