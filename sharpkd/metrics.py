"""PSNR and SSIM with the super-resolution literature's conventions, defined once for the whole project.

Convention (the default everywhere in sharpkd, and what every table states in its header):

* **Channel:** luma Y of ITU-R BT.601 (a greyscale image counts as R = G = B) as MATLAB's ``rgb2ycbcr`` computes it for 8-bit data:
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with R, G, B in 0..255 (so Y is in 16..235).
  ``rgb=True`` scores the three RGB channels instead (SSIM is then the mean over channels).
* **Border:** ``crop`` pixels (default 4, the x4 scale) are removed from every side before scoring,
  as BasicSR's ``crop_border`` does.
* **Range:** data range 255. Images are given as float arrays already on the 0..255 scale; 16-bit images
  are scaled by 255/65535 before they get here (see :func:`to_255`).
* **PSNR:** ``10 log10(255^2 / MSE)``; identical images give ``inf``.
* **SSIM:** Wang et al. 2004: 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma as scikit-image
  does), K1 = 0.01, K2 = 0.03, population covariance, mean over the valid region; identical to
  ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class Convention:
    """How an image pair is scored. One instance is the project default."""

    rgb: bool = False
    crop: int = 4

    def describe(self) -> str:
        channel = "RGB" if self.rgb else "Y (BT.601, MATLAB rgb2ycbcr)"
        return f"{channel}, border {self.crop} px cropped, data range 255, SSIM 11x11 Gaussian sigma 1.5"


DEFAULT = Convention()


def to_255(image: np.ndarray) -> np.ndarray:
    """Float64 copy of an 8- or 16-bit (or float 0..1) image on the 0..255 scale."""
    if image.dtype == np.uint8:
        return image.astype(np.float64)
    if image.dtype == np.uint16:
        return image.astype(np.float64) * (255.0 / 65535.0)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float64) * 255.0
    raise ValueError(f"unsupported image dtype {image.dtype}")


def rgb_to_y(rgb255: np.ndarray) -> np.ndarray:
    """BT.601 luma as MATLAB ``rgb2ycbcr``: input HxWx3 on 0..255, output HxW on 16..235."""
    r, g, b = rgb255[..., 0], rgb255[..., 1], rgb255[..., 2]
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _prepare(a: np.ndarray, b: np.ndarray, conv: Convention) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    a, b = to_255(a), to_255(b)
    if a.ndim == 3 and a.shape[2] == 1:
        a, b = a[..., 0], b[..., 0]
    if a.ndim == 2 and not conv.rgb:
        # grey is R = G = B: scored as the Y of that RGB picture, so HxW, HxWx1 and HxWx3 agree
        a, b = np.repeat(a[..., None], 3, axis=2), np.repeat(b[..., None], 3, axis=2)
    if a.ndim == 3 and not conv.rgb:
        if a.shape[2] != 3:
            raise ValueError(f"Y channel needs RGB images, got {a.shape[2]} channels")
        a, b = rgb_to_y(a), rgb_to_y(b)
    c = conv.crop
    if c:
        if a.shape[0] <= 2 * c or a.shape[1] <= 2 * c:
            raise ValueError(f"image {a.shape[1]}x{a.shape[0]} is too small for a {c} px border crop")
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    return a, b


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    # Gaussian window sigma 1.5 truncated at 3.5 sigma -> 11x11, as scikit-image; the 5 px rim where the
    # window does not fit is left out of the mean, also as scikit-image.
    blur = lambda x: gaussian_filter(x, sigma=1.5, truncate=3.5)  # noqa: E731
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    pad = 5
    if s.shape[0] <= 2 * pad or s.shape[1] <= 2 * pad:
        raise ValueError(f"image {a.shape[1]}x{a.shape[0]} is too small for an 11x11 SSIM window")
    return float(s[pad:-pad, pad:-pad].mean())


def psnr(a: np.ndarray, b: np.ndarray, conv: Convention = DEFAULT) -> float:
    """PSNR in dB between two images of the same size (uint8, uint16, or float 0..1)."""
    return _psnr(*_prepare(a, b, conv))


def ssim(a: np.ndarray, b: np.ndarray, conv: Convention = DEFAULT) -> float:
    """SSIM between two images of the same size (see the module docstring for the convention)."""
    x, y = _prepare(a, b, conv)
    if x.ndim == 2:
        return _ssim_channel(x, y)
    return float(np.mean([_ssim_channel(x[..., i], y[..., i]) for i in range(x.shape[2])]))


def psnr_ssim(a: np.ndarray, b: np.ndarray, conv: Convention = DEFAULT) -> tuple[float, float]:
    """Both metrics at once (one colour conversion)."""
    x, y = _prepare(a, b, conv)
    s = _ssim_channel(x, y) if x.ndim == 2 else float(np.mean([_ssim_channel(x[..., i], y[..., i]) for i in range(x.shape[2])]))
    return _psnr(x, y), s
