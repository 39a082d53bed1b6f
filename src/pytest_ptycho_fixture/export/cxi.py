"""The fixture as one CXI 1.6 file, readable by cdtools' ``Ptycho2DDataset.from_cxi``, by
ptychodus' CXI readers (patterns and product), and by this package's CXI source.

Written: the intensities ``(N, H, W)`` at ``/entry_1/instrument_1/detector_1/data``
(linked from ``/entry_1/data_1/data``), float32, whose square roots are the fixture's
amplitudes exactly; the translations ``(N, 3)`` in metres at
``/entry_1/sample_1/geometry_1/translation`` (x, y, 0, in ptychodus' frame; cdtools reads
the same columns); the detector distance and pixel; the source energy (J) and
wavelength (m). The probe and the object go where ptychodus writes them, the probe at
``/entry_1/image_1/data`` (the illumination links to it) and the object at
``/entry_1/image_2/data``, with the object's centre and pixel and the scan indexes under
``/entry_1/ptychodus``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..atomic import atomic_writer, parents_made
from ..geometry import ELECTRON_VOLT
from .base import in_memory

if TYPE_CHECKING:
    from .base import Exported


def write(fixture: Exported, output: Path) -> list[Path]:
    """Write the CXI file ``output``."""
    if output.is_dir():
        raise IsADirectoryError(21, "is a directory, but a CXI file path is required", str(output))
    data = in_memory(lambda handle: _write(handle, fixture))
    with parents_made(output), atomic_writer(output) as handle:
        handle.write(data)
    return [output]


def _write(handle: Any, fixture: Exported) -> None:
    import h5py
    import numpy as np

    geometry, arrays = fixture.geometry, fixture.arrays
    x_m, y_m = fixture.metres()
    n = len(x_m)
    (px, py), (cx, cy) = fixture.object_pixel_m, fixture.object_center_m
    with h5py.File(handle, "w") as h5:
        h5["cxi_version"] = 160
        h5["number_of_entries"] = 1
        entry = h5.create_group("entry_1")
        entry["title"] = np.bytes_(fixture.path.stem)
        entry["experiment_description"] = np.bytes_(
            f"pytest-ptycho-fixture: {fixture.metadata['content_sha256']}"
        )
        source = entry.create_group("instrument_1/source_1")
        source["energy"] = geometry.energy_ev * ELECTRON_VOLT
        source["wavelength"] = geometry.wavelength_m
        detector = entry.create_group("instrument_1/detector_1")
        detector["distance"] = geometry.distance_m
        detector["x_pixel_size"] = geometry.pixel_m[0]
        detector["y_pixel_size"] = geometry.pixel_m[1]
        detector.create_dataset("data", data=fixture.intensities())
        translation = np.zeros((n, 3), dtype=np.float64)
        translation[:, 0], translation[:, 1] = x_m, y_m
        entry.create_dataset("sample_1/geometry_1/translation", data=translation)
        entry["data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        entry["data_1/translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
        probe = entry.create_dataset("image_1/data", data=arrays[c.PROBE][None, None])
        probe.attrs["axes"] = "coherent:incoherent:y:x"
        entry["image_1/data_type"] = np.bytes_("amplitude")
        entry["image_1/data_space"] = np.bytes_("real")
        source["illumination"] = h5py.SoftLink("/entry_1/image_1/data")
        obj = entry.create_dataset("image_2/data", data=arrays[c.OBJECT][None])
        obj.attrs["axes"] = "layer:y:x"
        entry["image_2/data_type"] = np.bytes_("electron density")
        entry["image_2/data_space"] = np.bytes_("real")
        kept = entry.create_group("ptychodus")
        kept["probe_position_indexes"] = np.arange(n, dtype=np.int64)
        for name, value in (
            ("object_center_x_m", cx),
            ("object_center_y_m", cy),
            ("object_pixel_width_m", px),
            ("object_pixel_height_m", py),
            ("probe_pixel_width_m", px),
            ("probe_pixel_height_m", py),
        ):
            kept[name] = float(value)
