"""The baseline: how a one-off fixture script does it (load everything, then subset).

Usage: python naive_generate.py SOURCE.npz OUTPUT.npz [SUBSET_SIZE]
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np


def main() -> None:
    source, output = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    with np.load(source) as data:
        arrays = {key: data[key] for key in data.files}
    diffraction = arrays["diffraction"]
    positions = arrays["xcoords"].shape[0]
    if diffraction.shape[-1] == positions and diffraction.shape[0] != positions:
        diffraction = diffraction.transpose(2, 0, 1)
    index = np.array([i * positions // n for i in range(n)])
    fixture = {
        "diffraction": diffraction[index].astype(np.float32),
        "objectGuess": arrays["objectGuess"].astype(np.complex64),
        "probeGuess": arrays["probeGuess"].astype(np.complex64),
        "xcoords": arrays["xcoords"][index].astype(np.float64),
        "ycoords": arrays["ycoords"][index].astype(np.float64),
    }
    fixture["diff3d"] = fixture["diffraction"]
    np.savez_compressed(output, **fixture)
    with open(output, "rb") as handle:
        print(hashlib.sha256(handle.read()).hexdigest())


if __name__ == "__main__":
    main()
