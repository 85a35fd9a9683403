"""``sharpkd demo``: the main job on an embedded default.

scikit-image's colour sample photos are degraded with the project's recipe, enhanced with the bundled
model, and written as side-by-side figures (degraded | sharpkd | original, PSNR/SSIM on each). One more
photo is given as it is, already sharp (:func:`sharp_photo`), to show that the default model leaves it
alone: its row compares the output with that input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from sharpkd import figures, metrics
from sharpkd.degrade import CANONICAL, degrade
from sharpkd.inference import enhance
from sharpkd.prepare import SAMPLE_PHOTOS
from sharpkd.pretrained import Loaded


@dataclass(frozen=True)
class DemoRow:
    photo: str
    lq_psnr: float
    lq_ssim: float
    out_psnr: float
    out_ssim: float
    figure: Path

    @property
    def gain(self) -> float:
        return self.out_psnr - self.lq_psnr


SHARP_NAME = "astronaut, already sharp"


def sharp_photo() -> np.ndarray:
    """A crisp photo: scikit-image's astronaut averaged down 2x (box filter), 256x256."""
    big = Image.fromarray(skimage.data.astronaut())
    return np.asarray(big.resize((big.width // 2, big.height // 2), Image.BOX))


def run_demo(loaded: Loaded, out_dir: Path, tile: int = 128, photos: tuple[str, ...] = SAMPLE_PHOTOS, sharp: bool = True) -> list[DemoRow]:
    """One row per degraded sample photo, then (``sharp``) the row of the sharp photo given as it is."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in photos:
        hr, lq = degrade(np.ascontiguousarray(getattr(skimage.data, name)()), CANONICAL)
        out = enhance(loaded, lq, tile)
        lq_m, out_m = metrics.psnr_ssim(lq, hr), metrics.psnr_ssim(out, hr)
        fig = figures.comparison([
            (f"degraded (blur {CANONICAL.sigma}, x{CANONICAL.scale} down/up)\nPSNR-Y {lq_m[0]:.2f} dB  SSIM-Y {lq_m[1]:.4f}", lq),
            (f"sharpkd ({loaded.name})\nPSNR-Y {out_m[0]:.2f} dB  SSIM-Y {out_m[1]:.4f}", out),
            ("original\n(ground truth)", hr),
        ])
        path = out_dir / f"{name}.png"
        Image.fromarray(fig).save(path)
        rows.append(DemoRow(name, *lq_m, *out_m, path))
    if sharp:
        photo = sharp_photo()
        out = enhance(loaded, photo, tile)
        out_m = metrics.psnr_ssim(out, photo)
        fig = figures.comparison([
            ("input: already sharp\n(no degradation)", photo),
            (f"sharpkd ({loaded.name})\nPSNR-Y to the input {out_m[0]:.2f} dB", out),
            ("difference x8\n(grey = unchanged)", np.clip(128 + 8 * (out.astype(int) - photo.astype(int)), 0, 255).astype(np.uint8)),
        ])
        path = out_dir / "astronaut-sharp.png"
        Image.fromarray(fig).save(path)
        rows.append(DemoRow(SHARP_NAME, float("inf"), 1.0, *out_m, path))
    return rows
