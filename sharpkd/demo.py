"""``sharpkd demo``: the main job on an embedded default.

scikit-image's colour sample photos are degraded with the project's recipe, enhanced with the bundled
model, and written as side-by-side figures (degraded | sharpkd | original, PSNR/SSIM on each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

from sharpkd import figures, metrics
from sharpkd.degrade import CANONICAL, degrade
from sharpkd.enhance import enhance_array
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


def run_demo(loaded: Loaded, out_dir: Path, tile: int = 128, photos: tuple[str, ...] = SAMPLE_PHOTOS) -> list[DemoRow]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in photos:
        hr, lq = degrade(np.ascontiguousarray(getattr(skimage.data, name)()), CANONICAL)
        out = enhance_array(loaded, lq, tile)
        lq_m, out_m = metrics.psnr_ssim(lq, hr), metrics.psnr_ssim(out, hr)
        fig = figures.comparison([
            (f"degraded (blur {CANONICAL.sigma}, x{CANONICAL.scale} down/up)\nPSNR-Y {lq_m[0]:.2f} dB  SSIM-Y {lq_m[1]:.4f}", lq),
            (f"sharpkd ({loaded.name})\nPSNR-Y {out_m[0]:.2f} dB  SSIM-Y {out_m[1]:.4f}", out),
            ("original\n(ground truth)", hr),
        ])
        path = out_dir / f"{name}.png"
        Image.fromarray(fig).save(path)
        rows.append(DemoRow(name, *lq_m, *out_m, path))
    return rows
