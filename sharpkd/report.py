"""The distillation report card: degraded input / teacher / student+KD / student alone, measured.

Every number is measured on the data set's validation split with the project's metric convention
(:mod:`sharpkd.metrics`): PSNR-Y and SSIM-Y, the gain over the degraded input, parameters, multiply-
accumulates per output pixel (counted from the convolutions actually run) and CPU throughput (median of
a few timed passes over one validation image). ``report.md`` says in words whether distillation helped.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from sharpkd import metrics, models
from sharpkd.pairs import Pair, to_tensor
from sharpkd.training import evaluate


@dataclass(frozen=True)
class Entry:
    name: str
    psnr_y: float
    ssim_y: float
    gain: float
    params: int
    macs_per_pixel: float
    cpu_mp_s: float | None


def macs_per_pixel(model: nn.Module, size: int = 64) -> float:
    """Multiply-accumulates per output pixel, counted over every conv in one pass of a ``size`` square."""
    total = 0

    def count(conv: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = conv.kernel_size
        total += output.numel() * (conv.in_channels // conv.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, size, size, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return total / (size * size)


@torch.inference_mode()
def cpu_speed(model: nn.Module, image: torch.Tensor, repeats: int = 3) -> float:
    """Megapixels per second of a CPU copy of ``model`` on ``image`` (1x3xHxW), median of ``repeats``."""
    model = model.to("cpu").eval()
    model(image)  # warm-up: first-call allocations are not what a user waits for per photo
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(image)
        times.append(time.perf_counter() - t0)
    return image.shape[-2] * image.shape[-1] / 1e6 / statistics.median(times)


def measure(name: str, model: nn.Module, val_pairs: list[Pair], speed_image: torch.Tensor, val: dict | None = None) -> Entry:
    """One row: reuse ``val`` (a run's final validation) when given, else evaluate now."""
    val = val if val and "psnr_y" in val else evaluate(model, val_pairs, crop=metrics.DEFAULT.crop)
    return Entry(name, val["psnr_y"], val["ssim_y"], val["gain"], models.parameter_count(model), macs_per_pixel(model), cpu_speed(model, speed_image))


def input_entry(val: dict) -> Entry:
    return Entry("degraded input (bicubic)", val["psnr_in"], val["ssim_in"], 0.0, 0, 0.0, None)


def speed_image(val_pairs: list[Pair], size: int = 512) -> torch.Tensor:
    """A ``size`` square (or the largest that fits, on the 4 px grid) from the first validation image."""
    lq = val_pairs[0].lq
    h = min(size, lq.shape[0]) // 4 * 4
    w = min(size, lq.shape[1]) // 4 * 4
    return to_tensor(lq[:h, :w])


# Below this a difference between two training runs is not a result. Measured: two seeds of the same
# student differ by 0.003 dB (5,000 steps, 52 validation photos, docs/model-card.md); short runs on few
# photos differ by more, so the threshold is set well above that.
NO_DIFFERENCE_DB = 0.05


def verdict(kd: Entry, alone: Entry, threshold: float = NO_DIFFERENCE_DB) -> str:
    delta = kd.psnr_y - alone.psnr_y
    same = "(same steps, seed, data and starting weights)"
    if abs(delta) < threshold:
        return (f"No measurable difference: the student trained with the teacher is {delta:+.3f} dB PSNR-Y against the same "
                f"student trained alone {same}, inside the {threshold} dB that separates two seeds of one run.")
    if delta > 0:
        return f"Distillation helped: the student trained with the teacher gains {delta:+.2f} dB PSNR-Y over the same student trained alone {same}."
    return f"Distillation hurt here: the student trained with the teacher is {delta:+.2f} dB PSNR-Y against the same student trained alone {same}."


def write(entries: list[Entry], kd: Entry, alone: Entry, context: dict, out_dir: Path) -> str:
    """Write ``report.md`` and ``report.json`` into ``out_dir``; returns the markdown."""
    loss = ", ".join(f"{k} x {v}" for k, v in context["loss"].items())
    lines = [
        "# sharpkd distillation report",
        "",
        f"Validation: {context['val_images']} images of `{context['dataset']}`; {metrics.DEFAULT.describe()}.",
        f"Training: {context['steps']} steps, batch {context['batch_size']}, {context['patch']} px crops, seed {context['seed']}; "
        f"loss: {loss}; starting weights: {context.get('init') or 'fresh'} (both students). "
        f"Speed: CPU, {torch.get_num_threads()} threads, {context['speed_size']} image, median of 3.",
        "",
        "| model | PSNR-Y dB | SSIM-Y | gain dB | parameters | MACs/pixel | CPU MP/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in entries:
        speed = "-" if e.cpu_mp_s is None else f"{e.cpu_mp_s:.2f}"
        lines.append(f"| {e.name} | {e.psnr_y:.2f} | {e.ssim_y:.4f} | {e.gain:+.2f} | {e.params:,} | {e.macs_per_pixel:,.0f} | {speed} |")
    lines += ["", verdict(kd, alone), ""]
    text = "\n".join(lines)
    out_dir = Path(out_dir)
    (out_dir / "report.md").write_text(text)
    data = {"context": context, "entries": [asdict(e) for e in entries], "kd_minus_alone_db": kd.psnr_y - alone.psnr_y, "verdict": verdict(kd, alone)}
    (out_dir / "report.json").write_text(json.dumps(data, indent=2))
    return text
