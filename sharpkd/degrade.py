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
    from scipy.ndimage import correlate1d

    out = np.asarray(image, dtype=np.float64)
    if sigma <= 0:
        return out.copy()
    taps = gaussian_kernel(sigma, truncate)
    for axis in (0, 1):
        out = correlate1d(out, taps, axis=axis, mode="reflect")  # SciPy's "reflect" is half-sample symmetric
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


# ----------------------------------------------------------------------------------------------------
# A range of degradations, for models that must also handle photos that are sharp, a little soft,
# upscaled, noisy or JPEG. The canonical recipe is one point of it (sigma 1.0, scale 4, bicubic).

FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS, "box": Image.BOX}


@dataclass(frozen=True)
class Degradation:
    """One concrete degradation. ``sigma_y`` differs from ``sigma_x`` for anisotropic blur, rotated by ``theta``."""

    sigma_x: float = 0.0
    sigma_y: float = 0.0
    theta: float = 0.0
    scale: float = 1.0
    down_filter: str = "bicubic"
    noise: float = 0.0  # Gaussian noise sigma, on the 0..255 scale
    jpeg: int = 0  # JPEG quality; 0 = no JPEG

    @staticmethod
    def of(recipe: Recipe) -> "Degradation":
        return Degradation(sigma_x=recipe.sigma, sigma_y=recipe.sigma, scale=float(recipe.scale))


@dataclass(frozen=True)
class DegradationRange:
    """The distribution training samples from. Shares are probabilities; ranges are uniform (lo, hi)."""

    clean_share: float = 0.15  # target = input: the model must learn to leave sharp photos alone
    canonical_share: float = 0.15  # exactly the canonical recipe: the general model must not lose it
    sigma: tuple[float, float] = (0.0, 2.0)
    anisotropic_share: float = 0.25
    unscaled_share: float = 0.35  # blur without resizing
    scale: tuple[float, float] = (1.25, 4.0)
    filters: tuple[str, ...] = ("bicubic", "bilinear", "lanczos", "box")
    noise_share: float = 0.2
    noise: tuple[float, float] = (1.0, 10.0)  # sigma on 0..255; phones and high ISO reach 5..10
    jpeg_share: float = 0.3
    jpeg_quality: tuple[int, int] = (30, 95)  # web images go down to quality 30-40
    # noise and/or JPEG on a sharp photo, no blur or resizing. Without this share both only ever came
    # with blur (sigma drawn from 0..2), and the model trained that way (the bundled general of
    # 2026-11-27) does nothing to noise or JPEG alone, even when told them (measured: +0.00 dB at
    # noise 5 and JPEG 40 with the true conditions). Data sets prepared before it record no such share: 0.
    artifacts_only_share: float = 0.15

    def describe(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    def sample(self, rng: np.random.Generator) -> Degradation:
        u = rng.random()
        if u < self.clean_share:
            return Degradation()
        if u < self.clean_share + self.canonical_share:
            return Degradation.of(CANONICAL)
        if u < self.clean_share + self.canonical_share + self.artifacts_only_share:
            kind = int(rng.integers(3))  # noise, JPEG, or both
            return Degradation(
                noise=float(rng.uniform(*self.noise)) if kind != 1 else 0.0,
                jpeg=int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)) if kind != 0 else 0,
            )
        sx = float(rng.uniform(*self.sigma))
        sy, theta = sx, 0.0
        if rng.random() < self.anisotropic_share:
            sy, theta = float(rng.uniform(*self.sigma)), float(rng.uniform(0, np.pi))
        scale = 1.0 if rng.random() < self.unscaled_share else float(rng.uniform(*self.scale))
        return Degradation(
            sigma_x=sx, sigma_y=sy, theta=theta, scale=scale,
            down_filter=self.filters[int(rng.integers(len(self.filters)))],
            noise=float(rng.uniform(*self.noise)) if rng.random() < self.noise_share else 0.0,
            jpeg=int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1)) if rng.random() < self.jpeg_share else 0,
        )


GENERAL = DegradationRange()
# The range of the general model's cleanup network (``prepare --degradations artifacts``): noise and/or JPEG
# alone on a sharp photo, and clean crops (told 0: leave alone), nothing blurred or resized. The cleanup
# network runs on photos found noisy or JPEG-damaged, before the general network where they are also soft
# (docs/model-card.md).
ARTIFACTS = DegradationRange(clean_share=0.1, canonical_share=0.0, artifacts_only_share=0.9)

# The general model is told (or estimates) the degradation as these numbers, each scaled to 0..1.
CONDITIONS = ("blur", "scale", "noise", "jpeg")


def conditions(d: Degradation) -> tuple[float, float, float, float]:
    """``d`` as the general model's condition vector (all 0 = a clean photo, leave it alone).

    blur: the blur's geometric-mean sigma / 2; scale: (factor - 1) / 3; noise: sigma / 10;
    jpeg: (100 - quality) / 70, 0 without JPEG. The down filter and anisotropy are left to the model.
    """
    blur = min(1.0, float(np.sqrt(d.sigma_x * d.sigma_y)) / 2.0)
    return (blur, min(1.0, (d.scale - 1.0) / 3.0), min(1.0, d.noise / 10.0), min(1.0, (100 - d.jpeg) / 70.0) if d.jpeg else 0.0)


def anisotropic_kernel(sigma_x: float, sigma_y: float, theta: float, truncate: float = 3.0) -> np.ndarray:
    """Normalised 2-D Gaussian with axes ``sigma_x``/``sigma_y`` rotated by ``theta`` (radians)."""
    radius = max(1, int(truncate * max(sigma_x, sigma_y) + 0.5))
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1].astype(np.float64)
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * x + s * y, -s * x + c * y
    k = np.exp(-0.5 * ((u / max(sigma_x, 1e-6)) ** 2 + (v / max(sigma_y, 1e-6)) ** 2))
    return k / k.sum()


def apply(hr: np.ndarray, d: Degradation, rng: np.random.Generator | None = None) -> np.ndarray:
    """Degrade an HxWx3 uint8 image by ``d``; the result has the same size (it is brought back up)."""
    from scipy.ndimage import convolve

    h, w = hr.shape[:2]
    out = hr
    if max(d.sigma_x, d.sigma_y) > 0:
        if abs(d.sigma_x - d.sigma_y) < 1e-9:
            out = to_uint8(gaussian_blur(out, d.sigma_x))
        else:
            k = anisotropic_kernel(d.sigma_x, d.sigma_y, d.theta)[..., None]
            out = to_uint8(convolve(out.astype(np.float32), k.astype(np.float32), mode="mirror"))
    if d.scale > 1.0:
        small = (max(1, round(w / d.scale)), max(1, round(h / d.scale)))
        out = np.asarray(Image.fromarray(out).resize(small, FILTERS[d.down_filter]).resize((w, h), Image.BICUBIC))
    if d.noise > 0:
        rng = rng or np.random.default_rng()
        out = to_uint8(out.astype(np.float64) + rng.normal(0, d.noise, out.shape))
    if d.jpeg:
        import io

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=d.jpeg)
        out = np.asarray(Image.open(buf).convert("RGB"))
    return np.ascontiguousarray(out)
