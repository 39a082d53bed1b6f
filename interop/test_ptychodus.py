"""ptychodus 1.7.0 reads what ``ptycho-fixture export`` writes, and the fixture's sources
read what ptychodus writes, each code placing the probe where the other does.

ptychodus puts the probe's pixel ``(W - 1) / 2`` at a position's object pixel; the
fixture puts its pixel ``W // 2`` at its coordinate. The two agree when the probe's
corners do: ``x_ptychodus - (W - 1) / 2 == x_fixture - W // 2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from ptychodus.api.assemble import AssembledDiffractionData
from ptychodus.api.diffraction import (
    DiffractionDataset,
    DiffractionDatasetLayoutNode,
    DiffractionMetadata,
    SimpleDiffractionArray,
    SimpleDiffractionDataset,
)
from ptychodus.api.geometry import ImageExtent, PixelGeometry
from ptychodus.api.io import load_diffraction_data, save_diffraction_data
from ptychodus.api.object import Object, ObjectCenter, ObjectPosition
from ptychodus.api.probe import ProbeSequence
from ptychodus.api.probe_positions import ProbePositionSequence
from ptychodus.api.product import Product, ProductMetadata
from ptychodus.api.propagate import compute_far_field_pixel_geometry
from ptychodus.plugins.cxi_file import (
    CXIDiffractionFileReader,
    CXIDiffractionFileWriter,
    CXIProductFileIO,
)
from ptychodus.plugins.h5_product_file import H5ProductFileIO
from ptychodus.plugins.npz_diffraction_file import NPZDiffractionFileIO
from ptychodus.plugins.npz_product_file import NPZProductFileIO

from pytest_ptycho_fixture import export_fixture, generate_fixture

#: ptychodus' product readers and writers, by the file each writes.
PRODUCT_FILES: dict[str, type[H5ProductFileIO | NPZProductFileIO | CXIProductFileIO]] = {
    "product.h5": H5ProductFileIO,
    "product.npz": NPZProductFileIO,
    "product.cxi": CXIProductFileIO,
}
#: ptychodus' writers of patterns, by the file each writes.
PATTERN_FILES: dict[str, Callable[[Path, DiffractionDataset], None]] = {
    "patterns.cxi": lambda path, dataset: CXIDiffractionFileWriter().write(path, dataset),
    "patterns.npz": lambda path, dataset: NPZDiffractionFileIO().write(path, dataset),
    "diffraction.h5": lambda path, dataset: save_diffraction_data(path, assembled(dataset)),
}
#: Where the object's centre is in the products ptychodus writes: away from 0, so that
#: the centre's part in the mapping is tested.
OBJECT_CENTER_M = (1.5e-6, -2.5e-6)


def probe_corners(x_px: NDArray[Any], probe_side: int) -> NDArray[Any]:
    """Where ptychodus puts the probe's first pixel, for its object pixels ``x_px``."""
    return x_px - (probe_side - 1) / 2


def fixture_corners(coords: NDArray[Any], probe_side: int) -> NDArray[Any]:
    """Where the fixture puts the probe's first pixel, for its ``coords``."""
    return coords - probe_side // 2


def corner_deviation(product: Product, arrays: Mapping[str, NDArray[Any]]) -> float:
    """The largest distance, in object pixels, between the probe corners ptychodus maps
    ``product``'s positions to and those of the fixture ``arrays``."""
    geometry = product.object_.get_geometry()
    x_px = geometry.map_probe_positions_to_object_x_px(product.probe_positions)
    y_px = geometry.map_probe_positions_to_object_y_px(product.probe_positions)
    height, width = product.probes.get_array().shape[-2:]
    return max(
        float(np.abs(probe_corners(x_px, width) - fixture_corners(arrays["xcoords"], width)).max()),
        float(
            np.abs(probe_corners(y_px, height) - fixture_corners(arrays["ycoords"], height)).max()
        ),
    )


def all_patterns(dataset: DiffractionDataset) -> NDArray[Any]:
    """Every pattern of a ptychodus dataset, ``(N, H, W)``."""
    return np.concatenate([array.get_patterns() for array in dataset])


def assembled(dataset: DiffractionDataset) -> AssembledDiffractionData:
    """A ptychodus dataset as the patterns of its batch mode (``diffraction.h5``)."""
    metadata = dataset.get_metadata()
    assert metadata.detector_pixel_geometry is not None
    return AssembledDiffractionData(
        np.concatenate([array.get_indexes() for array in dataset]),
        all_patterns(dataset),
        metadata.detector_pixel_geometry,
        dataset.get_bad_pixels(),
    )


# -- ptychodus reads the export -------------------------------------------------------


@pytest.fixture(scope="module")
def exported(fixture_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture exported as ptychodus' pair (``ptychodus/``) and as ``fixture.cxi``."""
    folder = tmp_path_factory.mktemp("exported")
    export_fixture(fixture_npz, "ptychodus", folder / "ptychodus")
    export_fixture(fixture_npz, "cxi", folder / "fixture.cxi")
    return folder


def read_exported_product(folder: Path, format: str) -> Product:
    if format == "ptychodus":
        return H5ProductFileIO().read(folder / "ptychodus" / "product.h5")
    return CXIProductFileIO().read(folder / "fixture.cxi")


@pytest.mark.parametrize("format", ["ptychodus", "cxi"])
def test_ptychodus_places_the_probe_where_the_fixture_does_in_an_exported_product(
    exported: Path, fixture_arrays: Mapping[str, NDArray[Any]], format: str
) -> None:
    deviation = corner_deviation(read_exported_product(exported, format), fixture_arrays)
    print(f"\n{format} export: probe corners within {deviation:.2e} px of the fixture's")
    assert deviation <= 1e-6


@pytest.mark.parametrize("format", ["ptychodus", "cxi"])
def test_ptychodus_reads_the_probe_and_object_of_an_exported_product_unchanged(
    exported: Path, fixture_arrays: Mapping[str, NDArray[Any]], format: str
) -> None:
    product = read_exported_product(exported, format)
    probe, obj = product.probes.get_array(), product.object_.get_array()
    assert probe.shape == (1, 1, *fixture_arrays["probeGuess"].shape)
    assert obj.shape == (1, *fixture_arrays["objectGuess"].shape)
    assert np.array_equal(probe[0, 0], fixture_arrays["probeGuess"])
    assert np.array_equal(obj[0], fixture_arrays["objectGuess"])


@pytest.mark.parametrize("format", ["ptychodus", "cxi"])
def test_ptychodus_reads_the_distance_and_energy_the_sidecar_records(
    exported: Path, fixture_geometry: Mapping[str, Any], format: str
) -> None:
    metadata = read_exported_product(exported, format).metadata
    assert metadata.detector_distance_m == fixture_geometry["detector_distance_m"]
    # CXI keeps the energy in joules: back in eV it may differ in the last bit.
    assert metadata.photon_energy_eV == pytest.approx(
        fixture_geometry["photon_energy_eV"], rel=1e-12
    )


def test_ptychodus_reads_the_exported_diffraction_h5_as_the_squared_amplitudes(
    exported: Path,
    fixture_arrays: Mapping[str, NDArray[Any]],
    fixture_geometry: Mapping[str, Any],
) -> None:
    data = load_diffraction_data(exported / "ptychodus" / "diffraction.h5")
    amplitudes = fixture_arrays["diffraction"]
    assert np.array_equal(data.get_indexes(), np.arange(len(amplitudes)))
    assert np.array_equal(data.get_patterns(), np.square(amplitudes.astype(np.float32)))
    pixel = data.get_pixel_geometry()
    assert [pixel.width_m, pixel.height_m] == fixture_geometry["detector_pixel_size_m"]


def test_ptychodus_reads_the_exported_cxi_patterns_as_the_squared_amplitudes(
    exported: Path,
    fixture_arrays: Mapping[str, NDArray[Any]],
    fixture_geometry: Mapping[str, Any],
) -> None:
    dataset = CXIDiffractionFileReader().read(exported / "fixture.cxi")
    assert np.array_equal(
        all_patterns(dataset), np.square(fixture_arrays["diffraction"].astype(np.float32))
    )
    metadata = dataset.get_metadata()
    assert metadata.detector_distance_m == fixture_geometry["detector_distance_m"]
    assert metadata.photon_energy_eV == pytest.approx(
        fixture_geometry["photon_energy_eV"], rel=1e-12
    )
    assert metadata.detector_pixel_geometry is not None
    pixel = metadata.detector_pixel_geometry
    assert [pixel.width_m, pixel.height_m] == fixture_geometry["detector_pixel_size_m"]


# -- the fixture's sources read what ptychodus writes ----------------------------------


@pytest.fixture(scope="module")
def written(
    fixture_arrays: Mapping[str, NDArray[Any]],
    fixture_geometry: Mapping[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The fixture written by ptychodus' own writers: each of :data:`PRODUCT_FILES` and
    :data:`PATTERN_FILES`, the patterns as the float32 intensities a detector gives."""
    folder = tmp_path_factory.mktemp("written")
    amplitudes = fixture_arrays["diffraction"]
    probe, obj = fixture_arrays["probeGuess"], fixture_arrays["objectGuess"]
    n, height, width = amplitudes.shape
    energy = float(fixture_geometry["photon_energy_eV"])
    distance = float(fixture_geometry["detector_distance_m"])
    detector_pixel = PixelGeometry(*fixture_geometry["detector_pixel_size_m"])
    object_pixel = compute_far_field_pixel_geometry(
        detector_pixel,
        ImageExtent(width_px=width, height_px=height),
        wavelength_m=float(fixture_geometry["wavelength_m"]),
        propagation_distance_m=distance,
    )
    object_ = Object(obj, object_pixel, ObjectCenter(*OBJECT_CENTER_M))
    # The fixture's coordinates as ptychodus' object pixels, then into metres by
    # ptychodus' own inverse mapping.
    geometry = object_.get_geometry()
    positions = ProbePositionSequence(
        [
            geometry.map_coordinates_object_to_probe(
                ObjectPosition(
                    index,
                    float(x) - width // 2 + (width - 1) / 2,
                    float(y) - height // 2 + (height - 1) / 2,
                )
            )
            for index, (x, y) in enumerate(
                zip(fixture_arrays["xcoords"], fixture_arrays["ycoords"])
            )
        ]
    )
    product = Product(
        metadata=ProductMetadata(
            name="minimal_dataset_v1",
            comments="",
            detector_distance_m=distance,
            photon_energy_eV=energy,
            probe_photon_count=0.0,
            exposure_time_s=0.0,
            mass_attenuation_m2_per_kg=0.0,
            tomography_angle_deg=0.0,
        ),
        probe_positions=positions,
        probes=ProbeSequence(probe, None, object_pixel),
        object_=object_,
        losses=[],
    )
    for name, io in PRODUCT_FILES.items():
        io().write(folder / name, product)
    intensities = np.square(amplitudes)
    dataset = SimpleDiffractionDataset(
        DiffractionMetadata(
            num_patterns_per_array=[n],
            pattern_dtype=intensities.dtype,
            detector_extent=ImageExtent(width_px=width, height_px=height),
            detector_distance_m=distance,
            detector_pixel_geometry=detector_pixel,
            photon_energy_eV=energy,
        ),
        DiffractionDatasetLayoutNode.create_root(),
        [SimpleDiffractionArray("minimal_dataset_v1", np.arange(n), intensities)],
        np.zeros((height, width), dtype=bool),
    )
    for name, write in PATTERN_FILES.items():
        write(folder / name, dataset)
    return folder


@pytest.fixture(scope="module")
def read_back(
    written: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], Mapping[str, NDArray[Any]]]:
    """``read_back(product, patterns)``: the fixture the sources make of two of
    :func:`written`'s files, all of their 64 positions, made once."""
    made: dict[tuple[str, str], Mapping[str, NDArray[Any]]] = {}

    def read(product: str, patterns: str) -> Mapping[str, NDArray[Any]]:
        if (product, patterns) not in made:
            out = tmp_path_factory.mktemp("read") / "minimal_dataset_v1.npz"
            generate_fixture(written / product, out, 64, diffraction=written / patterns)
            with np.load(out) as npz:
                made[product, patterns] = {key: npz[key] for key in npz.files}
        return made[product, patterns]

    return read


@pytest.mark.parametrize("patterns", list(PATTERN_FILES))
@pytest.mark.parametrize("product", list(PRODUCT_FILES))
def test_a_product_and_patterns_written_by_ptychodus_give_back_the_fixture(
    read_back: Callable[[str, str], Mapping[str, NDArray[Any]]],
    fixture_arrays: Mapping[str, NDArray[Any]],
    product: str,
    patterns: str,
) -> None:
    found = read_back(product, patterns)
    assert np.array_equal(found["probeGuess"], fixture_arrays["probeGuess"])
    assert np.array_equal(found["objectGuess"], fixture_arrays["objectGuess"])
    # The square root of a float32 intensity is the amplitude or a float32 step from it.
    amplitudes = fixture_arrays["diffraction"]
    steps = np.abs(found["diffraction"] - amplitudes) / np.spacing(amplitudes)
    assert found["diffraction"].dtype == amplitudes.dtype
    assert steps.max() <= 1
    deviation = max(
        float(np.abs(found[key] - fixture_arrays[key]).max()) for key in ("xcoords", "ycoords")
    )
    print(
        f"\n{product} + {patterns}: coordinates within {deviation:.2e} px,"
        f" {int((steps > 0).sum())} of {steps.size} amplitudes one float32 step away"
    )
    assert deviation <= 1e-9


@pytest.mark.parametrize("product", list(PRODUCT_FILES))
def test_the_sources_place_the_probe_where_ptychodus_does_in_a_product_it_wrote(
    written: Path,
    read_back: Callable[[str, str], Mapping[str, NDArray[Any]]],
    product: str,
) -> None:
    ptychodus_product = PRODUCT_FILES[product]().read(written / product)
    deviation = corner_deviation(ptychodus_product, read_back(product, "diffraction.h5"))
    print(f"\n{product}: probe corners within {deviation:.2e} px of ptychodus' own mapping")
    assert deviation <= 1e-6
