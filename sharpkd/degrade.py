"""The degradation recipe that turns a sharp high-resolution photo into its soft low-quality twin.

Defined once here and used by ``prepare``, ``demo``, training validation and the tests:

    HR 8-bit RGB, cropped to a multiple of ``scale``
    -> Gaussian blur (``sigma``, kernel truncated at 3 sigma, half-sample symmetric "reflect" borders,
       i.e. ``skimage.filters.gaussian(img, sigma, truncate=3.0, mode="reflect")``)
    -> rounded to uint8
    -> Pillow ``resize(..., Image.BICUBIC)`` to 1/scale
    -> Pillow BICUBIC back to the (cropped) HR size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Recipe:
    """Parameters of the canonical degradation. The defaults are the project's recipe."""

    sigma: float = 1.0
    scale: int = 4
    truncate: float = 3.0

    def describe(self) -> dict:
        return {
            "sigma": self.sigma,
            "scale": self.scale,
            "truncate": self.truncate,
            "blur": "gaussian, half-sample symmetric borders (scikit-image mode='reflect')",
            "resize": f"Pillow {Image.__version__} BICUBIC down and up",
        }


CANONICAL = Recipe()


def crop_to_multiple(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right edge so both sides are multiples of ``scale``."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def gaussian_kernel(sigma: float, truncate: float = 3.0) -> np.ndarray:
    """1-D normalised Gaussian taps, radius ``int(truncate * sigma + 0.5)`` as in SciPy/scikit-image."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def gaussian_blur(image: np.ndarray, sigma: float, truncate: float = 3.0) -> np.ndarray:
    """Separable Gaussian blur of an HxW or HxWxC array, float64 out, symmetric borders.

    ``sigma <= 0`` returns the image unchanged (as float64).
    """
    out = np.asarray(image, dtype=np.float64)
    if sigma <= 0:
        return out.copy()
    taps = gaussian_kernel(sigma, truncate)
    radius = len(taps) // 2
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for i, t in enumerate(taps):
            acc += t * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return out


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def degrade(hr: np.ndarray, recipe: Recipe = CANONICAL) -> tuple[np.ndarray, np.ndarray]:
    """Apply the recipe to an HxWx3 uint8 image.

    Returns ``(hr_cropped, lq)``, both uint8 and of the same size (a multiple of ``recipe.scale``).
    """
    if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
        raise ValueError(f"degrade expects an HxWx3 uint8 image, got {hr.dtype} {hr.shape}")
    hr = crop_to_multiple(hr, recipe.scale)
    h, w = hr.shape[:2]
    if h < recipe.scale or w < recipe.scale:
        raise ValueError(f"image {w}x{h} is smaller than the scale {recipe.scale}")
    blurred = to_uint8(gaussian_blur(hr, recipe.sigma, recipe.truncate))
    small = Image.fromarray(blurred).resize((w // recipe.scale, h // recipe.scale), Image.BICUBIC)
    lq = np.asarray(small.resize((w, h), Image.BICUBIC))
    return np.ascontiguousarray(hr), lq
