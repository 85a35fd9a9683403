"""The one inference core: a decoded picture in, a restored picture out, tile by tile.

Every path that runs a model on a photo (``sharpkd enhance``, the Python API, validation during
training, the demo, the benchmarks) goes through :func:`enhance_picture` (or :func:`enhance_pixels`,
its colour-only part), so alpha, upscaling, grey and 16-bit are handled in one place.

Memory stays bounded by the tile, not the photo: the colour pixels stay 8- or 16-bit, and each region
is upscaled (``--upscale``), padded and converted to floats on its own (:class:`Source`); each restored
core is rounded back into the 8/16-bit output at once. Adjacent tiles run through the network together,
up to :data:`BLOCK_PX` a side as one region with one margin of context around it, so the margin is
computed once per block, not once per tile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sharpkd import imagefile, pretrained, tiling
from sharpkd.imagefile import Picture
from sharpkd.pretrained import Loaded

# Adjacent tiles go through the network as one region, up to this many pixels a side (4 x 4 tiles of the
# default 128 px): they share one margin instead of each computing its own. A larger --tile is computed on
# its own, so that --tile still bounds memory. Measured (general, 128 px tiles, 28 px margin, 2 cores), the
# network's time per pixel against a batch of 8 separate tile regions (the way before): 4 x 2 tiles 0.71x,
# 4 x 4 0.63x; the whole `sharpkd enhance` of a 12 MP PNG 1.33x faster with 4 x 2, 1.11x more with 4 x 4
# (6 x 6: 1.05x more, not taken). A 4 x 4 block of 128 px tiles is a 568 px region: 1.2x the pixels of
# those 8 regions (8 x 184 x 184). Output: within 1 level of the whole image, as before (the margin does
# not depend on the size of the core it surrounds).
BLOCK_PX = 512


def block_for(tile: int) -> tuple[int, int]:
    """Tiles (across, down) computed as one region for ``tile`` px tiles: as many as fit in ``BLOCK_PX``."""
    n = max(1, BLOCK_PX // tile) if tile > 0 else 1
    return n, n


UPSCALE_MARGIN = 3  # source pixels of context for Pillow's bicubic (its kernel reaches 2)


@dataclass(frozen=True)
class Result:
    """A restored picture, what ran on it (for ``-v``), and whether any pixel may differ from the
    (upscaled) input: False for a photo the general model left unchanged, or ``strength`` 0."""

    picture: Picture
    described: str
    changed: bool


def _top(dtype: np.dtype) -> float:
    return 65535.0 if dtype == np.uint16 else 255.0


def _mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Indices past the end ``n`` folded back as a mirror without repeating the edge (as ``F.pad``'s
    reflect), or held at the edge when the padding is as large as the image itself (replicate)."""
    if len(index) and index[-1] - n + 1 >= n:
        return np.minimum(index, n - 1)
    return np.where(index < n, index, 2 * n - 2 - index)


class Source:
    """Pixels as the model sees them: ``color`` (HxWxC, uint8/uint16) upscaled by ``factor`` with
    Pillow's bicubic and rounded to the same dtype, padded at the bottom/right to a multiple of
    ``align`` (mirror), read one region at a time as 1x3xhxw floats in 0..1.

    A region of the upscaled picture is upscaled from its source crop plus ``UPSCALE_MARGIN`` pixels:
    Pillow computes each output pixel from the same source pixels with the same weights, so it equals
    the same region of a whole-picture upscale."""

    def __init__(self, color: np.ndarray, factor: int = 1, align: int = 1, device: torch.device | str = "cpu") -> None:
        self.color, self.factor, self.device = color, factor, device
        self.height, self.width = color.shape[0] * factor, color.shape[1] * factor
        self.padded = (tiling.round_up(self.height, align), tiling.round_up(self.width, align))

    def pixels(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The upscaled pixels [y0, y1) x [x0, x1) (inside the unpadded picture), in the input's dtype."""
        f = self.factor
        if f == 1:
            return self.color[y0:y1, x0:x1]
        h, w = self.color.shape[:2]
        sy0, sy1 = max(0, y0 // f - UPSCALE_MARGIN), min(h, -(-y1 // f) + UPSCALE_MARGIN)
        sx0, sx1 = max(0, x0 // f - UPSCALE_MARGIN), min(w, -(-x1 // f) + UPSCALE_MARGIN)
        crop = self.color[sy0:sy1, sx0:sx1]
        size = ((sx1 - sx0) * f, (sy1 - sy0) * f)
        planes = [np.asarray(Image.fromarray(crop[..., c].astype(np.float32), "F").resize(size, Image.BICUBIC)) for c in range(crop.shape[2])]
        up = np.stack(planes, axis=2)[y0 - sy0 * f : y1 - sy0 * f, x0 - sx0 * f : x1 - sx0 * f]
        return np.clip(np.round(up), 0, _top(self.color.dtype)).astype(self.color.dtype)

    def whole(self, band: int = 256) -> np.ndarray:
        """The whole upscaled picture in its dtype, made one band of rows at a time (no float copy of it)."""
        if self.factor == 1:
            return self.color.copy()
        out = np.empty((self.height, self.width, self.color.shape[2]), self.color.dtype)
        for y in range(0, self.height, band):
            out[y : y + band] = self.pixels(y, min(y + band, self.height), 0, self.width)
        return out

    def region(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """1x3xhxw floats of [y0, y1) x [x0, x1) of the padded picture (grey repeated to RGB)."""
        rows = _mirror(np.arange(y0, y1), self.height)
        cols = _mirror(np.arange(x0, x1), self.width)
        ry0, ry1, rx0, rx1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        pix = self.pixels(ry0, ry1, rx0, rx1)
        if y1 > self.height or x1 > self.width:  # only the padded edge needs gathering
            pix = pix[rows - ry0][:, cols - rx0]
        if pix.shape[2] == 1:
            pix = np.repeat(pix, 3, axis=2)
        elif not pix.flags.writeable:  # torch warns on read-only memory, even though it only reads it here
            pix = pix.copy()
        # HxWxC seen as 1xCxHxW is already channels-last: one pass converts it, none reorders it
        x = torch.from_numpy(np.ascontiguousarray(pix)).permute(2, 0, 1)[None]
        return x.to(self.device, torch.float32).div_(_top(self.color.dtype))


def photo_run(loaded: Loaded, color: np.ndarray) -> pretrained.PhotoRun:
    """What would run on a photo's pixels (the general model's estimate), without restoring it."""
    src = Source(color, 1, loaded.align, loaded.device)
    return loaded.for_photo(src.region, src.height, src.width)


@torch.inference_mode()
def enhance_pixels(
    loaded: Loaded,
    color: np.ndarray,
    tile: int = 128,
    strength: float = 1.0,
    upscale: int = 1,
    on_tile: Callable[[int, int], None] | None = None,
    block: tuple[int, int] | None = None,
) -> tuple[np.ndarray, pretrained.PhotoRun]:
    """Restore HxWx3 or HxWx1 pixels (uint8 or uint16), upscaled by ``upscale`` first; returns the
    result (same channels and dtype, ``upscale`` times larger) and what ran on it.

    Grey goes through the model as three equal channels and comes back as their mean. ``strength``
    blends the (upscaled) input (0) and the model's output (1). ``block``: tiles (across, down) computed as
    one region (default :func:`block_for`). ``on_tile(done, total)`` after each block of tiles.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in 0..1, got {strength}")
    if color.ndim != 3 or color.shape[2] not in (1, 3) or color.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected HxWx1 or HxWx3 uint8/uint16 pixels, got {color.shape} {color.dtype}")
    src = Source(color, upscale, loaded.align, loaded.device)
    h, w = src.height, src.width
    run = loaded.for_photo(src.region, h, w)
    if not run.changes or strength == 0.0:
        if on_tile:
            on_tile(1, 1)
        return src.whole(), replace(run, changes=False)
    top = _top(color.dtype)
    out = np.empty((h, w, color.shape[2]), color.dtype)
    blocks = tiling.plan(*src.padded, tile, run.context or loaded.context, loaded.align, *(block or block_for(tile)))
    for done, t in enumerate(blocks, 1):
        # cores start on the align grid below the padded size, so each holds some of the unpadded photo
        y1, x1 = min(t.y1, h), min(t.x1, w)
        core = (slice(t.y0 - t.ry0, y1 - t.ry0), slice(t.x0 - t.rx0, x1 - t.rx0))
        x = src.region(t.ry0, t.ry1, t.rx0, t.rx1)
        c = run.fn(x.contiguous(memory_format=torch.channels_last))[0, :, core[0], core[1]]
        if strength != 1.0:
            xin = x[0, :, core[0], core[1]]
            c = xin + strength * (c - xin)
        c = c.clamp(0, 1)
        if color.shape[2] == 1:
            c = c.mean(dim=0, keepdim=True)
        out[t.y0 : y1, t.x0 : x1] = c.mul_(top).round_().permute(1, 2, 0).cpu().numpy().astype(color.dtype)
        if on_tile:
            on_tile(done, len(blocks))
    return out, run


def upscale_alpha(alpha: np.ndarray, factor: int) -> np.ndarray:
    """An HxW alpha plane upscaled as colour is (bicubic, rounded), one band of rows at a time."""
    if factor == 1:
        return alpha
    return Source(alpha[..., None], factor).whole()[..., 0]


def enhance_picture(
    loaded: Loaded,
    pic: Picture,
    tile: int = 128,
    strength: float = 1.0,
    upscale: int = 1,
    on_tile: Callable[[int, int], None] | None = None,
) -> Result:
    """The one function every path runs: a decoded picture in, the restored picture out (alpha
    upscaled alongside the colour and otherwise untouched; metadata carried over)."""
    out, run = enhance_pixels(loaded, pic.color, tile, strength, upscale, on_tile)
    alpha = upscale_alpha(pic.alpha, upscale) if pic.alpha is not None else None
    return Result(replace(pic, color=out, alpha=alpha), run.described, run.changes or upscale != 1)


# ----------------------------------------------------------------------------------------------------
# Python API


def load(model: str | None = None, weights: Path | None = None, device: str = "cpu") -> Loaded:
    """Load a model once (a bundled name, a weights file or run folder, or the default) for :func:`enhance`."""
    return pretrained.load(model, weights, pretrained.resolve_device(device))


def _picture_of_array(arr: np.ndarray) -> Picture:
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected HxW or HxWxC pixels with C in 1..4, got shape {arr.shape}")
    alpha = arr[..., -1].copy() if arr.shape[2] in (2, 4) else None
    return Picture(color=np.ascontiguousarray(arr[..., : 3 if arr.shape[2] >= 3 else 1]), alpha=alpha)


def _array_of_picture(pic: Picture, ndim: int) -> np.ndarray:
    a = pic.color if pic.alpha is None else np.concatenate([pic.color, pic.alpha[..., None]], axis=2)
    return a[..., 0] if ndim == 2 else a


def _pil_of_picture(pic: Picture) -> Image.Image:
    if pic.color.dtype == np.uint16 and pic.gray and pic.alpha is None:
        return Image.fromarray(pic.color[..., 0], "I;16")
    color = imagefile.to_dtype(pic.color, np.uint8)
    im = Image.fromarray(color[..., 0], "L") if pic.gray else Image.fromarray(color, "RGB")
    if pic.alpha is not None:
        im.putalpha(Image.fromarray(imagefile.to_dtype(pic.alpha, np.uint8), "L"))
    return im


def enhance(loaded: Loaded, image: Image.Image | np.ndarray, tile: int = 128, strength: float = 1.0, upscale: int = 1) -> Image.Image | np.ndarray:
    """Sharpen a PIL image or an HxW / HxWxC (C = 1, 2 with alpha, 3, 4 with alpha) uint8/uint16 array
    with a model from :func:`load`; returns the same kind. Alpha is carried over (upscaled alongside);
    palette and CMYK images come back as RGB(A)."""
    if isinstance(image, Image.Image):
        try:
            color, alpha = imagefile.split_pillow(image)
        except ValueError as e:
            raise ValueError(f"image mode {image.mode}: {e}") from None
        return _pil_of_picture(enhance_picture(loaded, Picture(color, alpha), tile, strength, upscale).picture)
    arr = np.asarray(image)
    return _array_of_picture(enhance_picture(loaded, _picture_of_array(arr), tile, strength, upscale).picture, arr.ndim)


def enhance_image(
    image: Image.Image | np.ndarray,
    model: str | None = None,
    weights: Path | None = None,
    tile: int = 128,
    strength: float = 1.0,
    upscale: int = 1,
    device: str = "cpu",
) -> Image.Image | np.ndarray:
    """One-call convenience: :func:`load` (bundled models are cached) then :func:`enhance`."""
    return enhance(load(model, weights, device), image, tile, strength, upscale)
