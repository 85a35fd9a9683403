"""Write tests/golden/<model>.npz for every bundled model: a small degraded input and the model's output
(maintainers' tool: run it after replacing bundled weights, and say so in the commit).

    python tools/make_golden.py

``tests/test_golden.py`` compares each model's output on the stored input with the stored output, so a
change of weights, loader or inference path is caught.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data

from sharpkd import pretrained
from sharpkd.degrade import degrade
from sharpkd.inference import enhance, load

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"


def golden_input() -> np.ndarray:
    """A 72x88 crop of the astronaut (face and detail), degraded by the canonical recipe: every bundled
    model changes it."""
    _, lq = degrade(np.ascontiguousarray(skimage.data.astronaut()[60:132, 180:268]))
    return lq


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    lq = golden_input()
    for name in pretrained.BUNDLED:
        out = enhance(load(name), lq, tile=0)
        spec = pretrained.bundled_spec(name)
        np.savez_compressed(GOLDEN / f"{name}.npz", input=lq, output=out, sha256=spec.sha256)
        print(name, "changed", int((out != lq).sum()), "values")


if __name__ == "__main__":
    main()
