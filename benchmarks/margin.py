"""The smallest tile context (margin) that keeps tiled output within 1 level of the whole-image pass.

    python benchmarks/margin.py --dataset mixed --models x4 general [--weights RUN ...] [--photos 20] [--margins 44 36 32 28 24 20] [--noise 5] [--jpeg 40] [--blur 1.0 --scale 2]

A model's receptive field (``context``, 44 px for the 40x8 students) is a safe bound, but the weights far
from the centre are tiny: a smaller margin changes the output by less than a rounding step, and each
128 px tile then carries much less context ((128 + 2m)^2 / 128^2: 2.85x the pixels at 44 px, 2.07x at 28).
For each margin this runs 128 px tiles and the whole image on real photos (the data set's validation
photos, degraded as in training so that every model changes them) and reports the largest difference
in 8-bit levels and the share of values that differ. The margin chosen per model is stored in its spec
(``weights/<name>.json``, "context") and ``tests/test_golden.py`` checks the 1-level bound. ``--noise S``
or ``--jpeg Q`` degrade the photos that way instead (a general model's cleanup stage runs on them); with
``--blur S`` / ``--scale F`` too, the photos are soft and noisy or blocky: a general model cleans them up
and then restores them, and such a photo's tiles carry twice the margin (``PhotoRun.context``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from sharpkd import pretrained
from sharpkd.degrade import Degradation, apply
from sharpkd.inference import enhance_pixels
from sharpkd.pairs import find_dataset, load_split

DEGRADATION = {"x4": Degradation(1.0, 1.0, scale=4.0), "teacher": Degradation(1.0, 1.0, scale=4.0)}
DEFAULT = Degradation(1.0, 1.0, scale=2.0)  # the general model: a photo it restores, not one it leaves alone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mixed")
    ap.add_argument("--models", nargs="*", default=["x4", "general"], help="bundled models")
    ap.add_argument("--weights", nargs="*", default=[], help="run folders or weights files (before bundling)")
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--margins", type=int, nargs="*", default=[44, 36, 32, 28, 24, 20])
    ap.add_argument("--noise", type=float, default=0.0, help="degrade with Gaussian noise of this sigma instead")
    ap.add_argument("--jpeg", type=int, default=0, help="degrade with JPEG of this quality instead")
    ap.add_argument("--blur", type=float, default=0.0, help="with --noise or --jpeg: blur with this sigma first")
    ap.add_argument("--scale", type=float, default=1.0, help="with --noise or --jpeg: and downscale/upscale by this factor")
    a = ap.parse_args()
    val = load_split(find_dataset(a.dataset), "val")
    photos = [p.hr for p in val[:: max(1, len(val) // a.photos)]][: a.photos]
    print(f"{len(photos)} photos; 128 px tiles against the whole image; 8-bit levels")
    print(f"{'model':10} {'margin':>6} {'max diff':>9} {'values differing':>17}")
    candidates = [(name, pretrained.load(name)) for name in a.models]
    candidates += [(Path(w).stem, pretrained.load_file(Path(w))) for w in a.weights]
    for name, loaded in candidates:
        d = DEGRADATION.get(name, DEGRADATION["x4"] if loaded.arch != "general" else DEFAULT)
        if a.noise or a.jpeg:
            d = Degradation(a.blur, a.blur, scale=a.scale, noise=a.noise, jpeg=a.jpeg)
        inputs = [apply(hr, d, np.random.default_rng(0)) for hr in photos]
        wholes = [enhance_pixels(loaded, lq, tile=0)[0] for lq in inputs]
        for m in a.margins:
            trial = replace(loaded, context=m)
            worst, differing, total = 0, 0, 0
            for lq, whole in zip(inputs, wholes):
                diff = np.abs(enhance_pixels(trial, lq, tile=128)[0].astype(int) - whole)
                worst, differing, total = max(worst, int(diff.max())), differing + int((diff > 0).sum()), total + diff.size
            print(f"{name:10} {m:6d} {worst:9d} {100 * differing / total:16.4f}%", flush=True)


if __name__ == "__main__":
    main()
