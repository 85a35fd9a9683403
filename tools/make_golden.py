"""Write tests/golden/<model>.npz for every bundled model: a small degraded input and the model's output
(maintainers' tool: run it after replacing bundled weights, and say so in the commit).

    python tools/make_golden.py

``tests/test_golden.py`` compares each model's output on the stored input with the stored output, so a
change of weights, loader or inference path is caught. Models with a cleanup stage also get
``<model>-cleanup.npz``: a noisy, JPEG-compressed input that goes through that stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data

from sharpkd import pretrained
from sharpkd.degrade import Degradation, apply, degrade
from sharpkd.inference import enhance, load

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"


def golden_input() -> np.ndarray:
    """A 72x88 crop of the astronaut (face and detail), degraded by the canonical recipe: every bundled
    model changes it."""
    _, lq = degrade(np.ascontiguousarray(skimage.data.astronaut()[60:132, 180:268]))
    return lq


def noisy_input() -> np.ndarray:
    """A 128x160 crop of the coffee photo with Gaussian noise sigma 6 and JPEG quality 60: the models with a
    cleanup stage (general, fast) send it through that stage."""
    crop = np.ascontiguousarray(skimage.data.coffee()[120:248, 200:360])
    return apply(crop, Degradation(noise=6.0, jpeg=60), np.random.default_rng(0))


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    lq = golden_input()
    for name in pretrained.BUNDLED:
        loaded = load(name)
        out = enhance(loaded, lq, tile=0)
        spec = pretrained.bundled_spec(name)
        np.savez_compressed(GOLDEN / f"{name}.npz", input=lq, output=out, sha256=spec.sha256)
        print(name, "changed", int((out != lq).sum()), "values")
        if getattr(loaded.model, "cleanup", None) is not None:
            noisy = noisy_input()
            out = enhance(loaded, noisy, tile=0)
            np.savez_compressed(GOLDEN / f"{name}-cleanup.npz", input=noisy, output=out, sha256=spec.sha256)
            print(name, "cleanup changed", int((out != noisy).sum()), "values")


if __name__ == "__main__":
    main()
