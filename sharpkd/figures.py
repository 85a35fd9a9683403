"""Figures drawn with Pillow alone: training curves and side-by-side comparisons with their numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

INK, GRID, BG = (30, 30, 30), (220, 220, 220), (255, 255, 255)
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def font(size: int = 14) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str, series: dict[str, list[tuple[float, float]]], log_y: bool) -> None:
    x0, y0, x1, y1 = box
    draw.text((x0, y0 - 22), title, fill=INK, font=font(15))
    draw.rectangle(box, outline=INK)
    pts = [p for s in series.values() for p in s if not log_y or p[1] > 0]
    if not pts:
        draw.text((x0 + 10, y0 + 10), "no data yet", fill=INK, font=font())
        return
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xs = [p[0] for p in pts]
    ys = [f(p[1]) for p in pts]
    xmin, xmax = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    ymin, ymax = min(ys), max(ys)
    if ymax - ymin < 1e-9:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    pad = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - pad, ymax + pad
    sx = lambda x: x0 + (x - xmin) / (xmax - xmin) * (x1 - x0)  # noqa: E731
    sy = lambda y: y1 - (y - ymin) / (ymax - ymin) * (y1 - y0)  # noqa: E731
    for i in range(5):
        yv = ymin + (ymax - ymin) * i / 4
        draw.line([(x0, sy(yv)), (x1, sy(yv))], fill=GRID)
        label = f"{10 ** yv:.3g}" if log_y else f"{yv:.3g}"
        draw.text((x0 - 58, sy(yv) - 7), label, fill=INK, font=font(12))
    draw.text((x0, y1 + 4), f"{xmin:.0f}", fill=INK, font=font(12))
    draw.text((x1 - 50, y1 + 4), f"step {xmax:.0f}", fill=INK, font=font(12))
    for (name, s), color in zip(series.items(), COLORS):
        s = [(x, f(y)) for x, y in s if not log_y or y > 0]
        if len(s) > 1:
            draw.line([(sx(x), sy(y)) for x, y in s], fill=color, width=2)
        for x, y in s[-1:] if len(s) > 1 else s:
            draw.ellipse([sx(x) - 3, sy(y) - 3, sx(x) + 3, sy(y) + 3], fill=color)
    for i, ((name, s), color) in enumerate(zip(series.items(), COLORS)):
        last = f" ({s[-1][1]:.4g})" if s else ""
        draw.text((x0 + 8, y0 + 6 + 16 * i), name + last, fill=color, font=font(13))


def plot_curves(log_path: Path, png_path: Path) -> None:
    """Training loss (log scale) and validation PSNR-Y of a run's log.jsonl, as one PNG."""
    loss: dict[str, list[tuple[float, float]]] = {}
    val: dict[str, list[tuple[float, float]]] = {"output PSNR-Y": [], "input PSNR-Y": []}
    for line in Path(log_path).read_text().splitlines():
        row = json.loads(line)
        if "val" in row:
            if "psnr_y" in row["val"]:
                val["output PSNR-Y"].append((row["step"], row["val"]["psnr_y"]))
                val["input PSNR-Y"].append((row["step"], row["val"]["psnr_in"]))
        else:
            for k, v in row.items():
                if k not in ("step", "lr", "sec"):
                    loss.setdefault(k, []).append((row["step"], v))
    im = Image.new("RGB", (1000, 420), BG)
    d = ImageDraw.Draw(im)
    _panel(d, (70, 40, 480, 380), "training loss", loss, log_y=True)
    _panel(d, (570, 40, 980, 380), "validation (dB)", val, log_y=False)
    im.save(png_path)


def label(image: np.ndarray, text: str, size: int = 16) -> np.ndarray:
    """The image with ``text`` on a dark band at its top (lines separated by newlines)."""
    im = Image.fromarray(image)
    d = ImageDraw.Draw(im)
    f = font(size)
    lines = text.split("\n")
    height = 6 + (size + 4) * len(lines)
    d.rectangle([0, 0, im.width, height], fill=(0, 0, 0))
    for i, line in enumerate(lines):
        d.text((6, 3 + (size + 4) * i), line, fill=(255, 255, 255), font=f)
    return np.asarray(im)


def side_by_side(panels: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Panels of equal height, left to right, with white gaps."""
    h = max(p.shape[0] for p in panels)
    parts = []
    for i, p in enumerate(panels):
        if p.shape[0] < h:
            p = np.concatenate([p, np.full((h - p.shape[0], *p.shape[1:]), 255, np.uint8)])
        parts.append(p)
        if i < len(panels) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


def _display(image: np.ndarray) -> np.ndarray:
    """uint8 RGB for drawing (16-bit scaled down, gray repeated)."""
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]


def best_crop(before: np.ndarray, after: np.ndarray, truth: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` square where ``after`` improved most over ``before`` (L1 to truth)."""
    h, w = truth.shape[:2]
    size = min(size, h, w)
    t = truth.astype(np.float64)
    gain = (np.abs(before.astype(np.float64) - t) - np.abs(after.astype(np.float64) - t)).reshape(h, w, -1).sum(axis=2)
    integral = np.pad(gain.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(y), int(x)


def comparison(panels: list[tuple[str, np.ndarray]], zoom: int = 96, width: int = 420) -> np.ndarray:
    """A figure: the panels' full views side by side (labelled), and under them the same zoomed crop of
    each, taken where the second panel improved most over the first (relative to the last panel, the
    ground truth). Labels may hold several lines (e.g. a name and its PSNR/SSIM)."""
    images = [_display(a) for _, a in panels]
    h, w = images[0].shape[:2]
    scale = min(1.0, width / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    y, x = best_crop(images[0], images[1], images[-1], zoom)
    z = min(zoom, h, w)
    factor = max(1.0, size[0] / z)  # the zoomed crops span the full width of the panels above them
    full, crops = [], []
    for (text, _), img in zip(panels, images):
        view = np.asarray(Image.fromarray(img).resize(size, Image.LANCZOS)) if scale < 1 else img
        view = np.asarray(Image.fromarray(view).copy())
        d = ImageDraw.Draw(im := Image.fromarray(view))
        d.rectangle([x * scale, y * scale, (x + z) * scale, (y + z) * scale], outline=(255, 220, 0), width=2)
        full.append(label(np.asarray(im), text))
        side = round(z * factor)
        crop = Image.fromarray(img[y : y + z, x : x + z]).resize((side, side), Image.NEAREST)
        crops.append(label(np.asarray(crop), f"zoom x{factor:.1f}", size=13))
    top, bottom = side_by_side(full), side_by_side(crops)
    if bottom.shape[1] < top.shape[1]:
        bottom = np.concatenate([bottom, np.full((bottom.shape[0], top.shape[1] - bottom.shape[1], 3), 255, np.uint8)], axis=1)
    return np.concatenate([top, np.full((6, top.shape[1], 3), 255, np.uint8), bottom[:, : top.shape[1]]], axis=0)
