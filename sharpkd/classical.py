"""Classical sharpening, the baseline a network must beat: an unsharp mask tuned on training photos.

``unsharp(image, radius, amount) = image + amount * (image - gaussian_blur(image, radius))``, on RGB,
clipped to the 8-bit range. The blur is the one of the degradation recipe (:mod:`sharpkd.degrade`).
:func:`tune` picks radius and amount from a grid by the mean PSNR-Y (project convention) over pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sharpkd import metrics
from sharpkd.degrade import gaussian_blur, to_uint8
from sharpkd.pairs import Pair

RADII = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
AMOUNTS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class UnsharpMask:
    radius: float
    amount: float

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Sharpen an HxWx3 uint8 image."""
        x = image.astype(np.float64)
        return to_uint8(x + self.amount * (x - gaussian_blur(x, self.radius)))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[y : y + size, x : x + size]


def tune(pairs: list[Pair], radii=RADII, amounts=AMOUNTS, crop: int = 256) -> tuple[UnsharpMask, dict]:
    """The grid point with the best mean PSNR-Y over ``pairs`` (centre crops of ``crop`` px, for speed).

    Returns the chosen mask and every grid point's mean PSNR-Y, keyed "radius,amount".
    """
    crops = [(center_crop(p.lq, crop), center_crop(p.hr, crop)) for p in pairs]
    scores = {}
    for r in radii:
        for a in amounts:
            usm = UnsharpMask(r, a)
            scores[f"{r},{a}"] = float(np.mean([metrics.psnr(usm(lq), hr) for lq, hr in crops]))
    best = max(scores, key=scores.get)
    r, a = (float(v) for v in best.split(","))
    return UnsharpMask(r, a), scores
