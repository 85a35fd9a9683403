"""The enhance flow: walk inputs -> read file -> tiles -> model -> stitch -> write file with its metadata.

:func:`enhance_array` is the pure core (pixels in, pixels out). :func:`plan_batch` decides which file goes
where; :func:`run_batch` does the I/O and reports each event through a callback, so the CLI can draw
progress and the tests can listen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from sharpkd import imagefile, pretrained, tiling
from sharpkd.models.general import General
from sharpkd.pretrained import Loaded

CLEAN_LEVEL = 0.01  # general model: a photo whose estimated conditions are all below this is left alone
SUFFIX_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}


@dataclass(frozen=True)
class Options:
    tile: int = 128
    strength: float = 1.0
    upscale: int = 1
    format: str | None = None
    quality: int = 95
    overwrite: bool = False
    recursive: bool = False


def upscale_bicubic(array: np.ndarray, factor: int) -> np.ndarray:
    """HxWxC (any dtype) -> (factor*H)x(factor*W)xC with Pillow's BICUBIC, channel by channel in float."""
    if factor == 1:
        return array
    h, w = array.shape[:2]
    planes = [
        np.asarray(Image.fromarray(array[..., c].astype(np.float32), "F").resize((w * factor, h * factor), Image.BICUBIC))
        for c in range(array.shape[2])
    ]
    top = 65535 if array.dtype == np.uint16 else 255
    return np.clip(np.round(np.stack(planes, axis=2)), 0, top).astype(array.dtype)


def model_for(loaded: Loaded, x: torch.Tensor) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """What the tiles of the 1x3xHxW photo ``x`` go through, and a description of it (for ``--verbose``).

    The general model estimates the photo's degradation once, here, so every tile gets the same
    conditions (and tiled output equals whole-image output). A photo it estimates as clean (every
    condition below ``CLEAN_LEVEL``) is passed through unchanged: the network alone would still touch a
    few pixels (measured on the sweep's JPEG case: up to 12 levels on 0.1 % of the pixels)."""
    model = loaded.model
    if isinstance(model, General):
        cond = model.estimate(x)
        blur, scale, noise, jpeg = cond[0].tolist()
        described = f"{loaded.name}, estimated blur {blur:.2f} scale {scale:.2f} noise {noise:.2f} jpeg {jpeg:.2f}"
        if float(cond.max()) < CLEAN_LEVEL:
            return (lambda t: t), f"{described}: clean, left unchanged"
        return (lambda t: model(t, cond)), described
    return model, loaded.name


@torch.inference_mode()
def enhance_array(
    loaded: Loaded,
    color: np.ndarray,
    tile: int = 128,
    strength: float = 1.0,
    on_tile: Callable[[int, int], None] | None = None,
    on_model: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Restore HxWx3 or HxWx1 pixels (uint8 or uint16); returns the same shape and dtype.

    Grayscale goes through the model as three equal channels and comes back as their mean.
    ``strength`` blends input (0) and model output (1). ``on_model`` is told what ran (see :func:`model_for`).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in 0..1, got {strength}")
    top = 65535.0 if color.dtype == np.uint16 else 255.0
    rgb = np.repeat(color, 3, axis=2) if color.shape[2] == 1 else color
    device = next(loaded.model.parameters()).device
    # HxWxC pixels seen as 1xCxHxW are already channels-last: one pass converts them, none reorders them
    rgb = rgb if rgb.flags.writeable and rgb.flags.c_contiguous else rgb.copy()  # torch warns on read-only arrays
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device, torch.float32).div_(top)
    x = x.contiguous(memory_format=torch.channels_last)
    run, described = model_for(loaded, x)
    if on_model:
        on_model(described)
    y = tiling.run(run, x, tile, loaded.context, loaded.align, on_tile)
    if strength != 1.0:
        y = x + strength * (y - x)
    y = y[0].clamp(0, 1)
    if color.shape[2] == 1:
        y = y.mean(dim=0, keepdim=True)
    return y.mul_(top).round_().permute(1, 2, 0).cpu().numpy().astype(color.dtype)


def enhance_image(
    image: Image.Image | np.ndarray,
    model: str | None = None,
    weights: Path | None = None,
    tile: int = 128,
    strength: float = 1.0,
    upscale: int = 1,
    device: str = "cpu",
) -> Image.Image | np.ndarray:
    """Python API: sharpen a PIL image or an HxW / HxWxC uint8/uint16 array; returns the same kind.

    Alpha (RGBA, LA) is carried over untouched; palette images come back as RGB(A).
    """
    loaded = pretrained.load(model, weights, pretrained.resolve_device(device))
    if isinstance(image, Image.Image):
        alpha = None
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA" if image.mode == "PA" or "transparency" in image.info else "RGB")
        if image.mode in ("RGBA", "LA"):
            alpha = image.getchannel("A")
            image = image.convert("RGB" if image.mode == "RGBA" else "L")
        if image.mode not in ("L", "RGB", "I;16"):
            image = image.convert("RGB")
        arr = np.asarray(image)
        result = Image.fromarray(_enhance_plain(loaded, arr, tile, strength, upscale))
        if alpha is not None:
            if upscale != 1:
                alpha = alpha.resize(result.size, Image.BICUBIC)
            result.putalpha(alpha)
        return result
    return _enhance_plain(loaded, np.asarray(image), tile, strength, upscale)


def _enhance_plain(loaded: Loaded, arr: np.ndarray, tile: int, strength: float, upscale: int) -> np.ndarray:
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        return _enhance_plain(loaded, arr[..., None], tile, strength, upscale)[..., 0]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected HxW, HxWx1, HxWx3 or HxWx4 pixels, got shape {arr.shape}")
    alpha = arr[..., 3:] if arr.shape[2] == 4 else None
    color = upscale_bicubic(arr[..., :3] if alpha is not None else arr, upscale)
    out = enhance_array(loaded, color, tile, strength)
    if alpha is not None:
        out = np.concatenate([out, upscale_bicubic(alpha, upscale)], axis=2)
    return out


# ----------------------------------------------------------------------------------------------------
# Batches of files


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)  # non-image files met in folder walks
    refused: list[tuple[Path, str]] = field(default_factory=list)  # inputs that cannot be done at all


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    megapixels: float = 0.0
    seconds: float = 0.0
    model: str = ""

    def as_dict(self) -> dict:
        return {
            "done": self.done, "skipped": self.skipped, "failed": len(self.failed),
            "failures": [{"path": p, "reason": r} for p, r in self.failed],
            "megapixels": round(self.megapixels, 3), "seconds": round(self.seconds, 3),
            "mp_per_s": round(self.megapixels / self.seconds, 3) if self.seconds > 0 else None,
            "model": self.model,
        }


def output_suffix(source: Path, fmt: str | None) -> str:
    """Same format as the input (keeping its spelling of the suffix) unless ``fmt``; unknown formats -> PNG."""
    if fmt is not None:
        fmt = imagefile.normalize_format(fmt)
        if SUFFIX_FORMATS.get(source.suffix.lower()) == fmt:
            return source.suffix
        return imagefile.FORMATS[fmt]
    return source.suffix if source.suffix.lower() in SUFFIX_FORMATS else ".png"


def plan_batch(inputs: list[Path], out_dir: Path, options: Options) -> Plan:
    """Decide the output path of every input image; folders are walked (``recursive``: sub-folders too,
    mirrored under ``out_dir``). Files already under ``out_dir`` are never taken as inputs."""
    plan = Plan()
    out_dir = Path(out_dir).resolve()
    sources: list[tuple[Path, Path]] = []  # (file, path relative to out_dir)
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            walker = item.rglob("*") if options.recursive else item.iterdir()
            for p in sorted(walker):
                if not p.is_file() or p.name.startswith("."):
                    continue
                if out_dir in p.resolve().parents:
                    continue
                if imagefile.is_image_path(p):
                    sources.append((p, p.relative_to(item)))
                else:
                    plan.ignored.append(p)
        elif item.exists():
            sources.append((item, Path(item.name)))
        else:
            plan.refused.append((item, "no such file or folder"))
    inputs_resolved = {s.resolve() for s, _ in sources}
    taken: dict[Path, Path] = {}
    for source, rel in sources:
        target = out_dir / rel.parent / (rel.stem + output_suffix(source, options.format))
        if target.resolve() in inputs_resolved:
            plan.refused.append((source, f"output {target} would overwrite an input file"))
        elif target in taken:
            plan.refused.append((source, f"output {target} is already the output of {taken[target]}"))
        else:
            taken[target] = source
            plan.jobs.append(Job(source, target))
    return plan


def enhance_file(
    loaded: Loaded, job: Job, options: Options, on_tile: Callable[[int, int], None] | None = None,
    on_model: Callable[[str], None] | None = None,
) -> float:
    """Read, restore, write one file. Returns its output megapixels. Raises ImageFileError."""
    pic = imagefile.read(job.source)
    color = upscale_bicubic(pic.color, options.upscale)
    alpha = pic.alpha
    if alpha is not None and options.upscale != 1:
        alpha = upscale_bicubic(alpha[..., None], options.upscale)[..., 0]
    out = enhance_array(loaded, color, options.tile, options.strength, on_tile, on_model)
    result = imagefile.Picture(out, alpha, pic.format, pic.exif, pic.icc)
    fmt = imagefile.normalize_format(options.format or SUFFIX_FORMATS.get(job.target.suffix.lower(), "png"))
    same_file_kind = SUFFIX_FORMATS.get(job.source.suffix.lower()) == fmt == pic.format and not pic.reoriented
    if options.upscale == 1 and same_file_kind and np.array_equal(out, color):
        # nothing changed (a photo the general model found clean, or --strength 0): the original file,
        # byte for byte, rather than a re-encoded copy that would lose JPEG quality. (Not for a file
        # whose EXIF orientation was applied: those are written upright with orientation 1.)
        imagefile.copy(job.source, job.target)
    else:
        imagefile.write(result, job.target, fmt, options.quality)
    return result.megapixels


def run_batch(
    loaded: Loaded,
    plan: Plan,
    options: Options,
    on_event: Callable[[str, Job, dict], None] | None = None,
) -> Summary:
    """Enhance every job of ``plan``. Events: "skip", "start", "tile", "done" (with "megapixels" and
    "model": what ran on it), "fail"."""
    emit = on_event or (lambda *_: None)
    summary = Summary(model=loaded.name)
    summary.failed.extend((str(p), r) for p, r in plan.refused)
    t0 = time.perf_counter()
    for job in plan.jobs:
        if job.target.exists() and not options.overwrite:
            summary.skipped += 1
            emit("skip", job, {})
            continue
        emit("start", job, {})
        ran = {"model": loaded.name}
        try:
            mp = enhance_file(loaded, job, options, lambda d, n: emit("tile", job, {"done": d, "total": n}), lambda m: ran.update(model=m))
        except (imagefile.ImageFileError, ValueError, MemoryError) as e:
            reason = e.reason if isinstance(e, imagefile.ImageFileError) else str(e) or type(e).__name__
            summary.failed.append((str(job.source), reason))
            emit("fail", job, {"reason": reason})
            continue
        summary.done += 1
        summary.megapixels += mp
        emit("done", job, {"megapixels": mp, **ran})
    summary.seconds = time.perf_counter() - t0
    return summary
