"""``sharpkd score``: pair two folders by name, score each pair, and summarise.

Pairing is by relative path and stem, not by sort order: ``out/a.png`` pairs with ``gt/a.jpg`` and
``out/trip/b.png`` with ``gt/trip/b.tif``. All numbers use :mod:`sharpkd.metrics` (one convention).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sharpkd import imagefile, metrics


@dataclass
class Row:
    """One image: its scores, or why it could not be scored."""

    name: str
    psnr: float | None = None
    ssim: float | None = None
    base_psnr: float | None = None
    base_ssim: float | None = None
    error: str | None = None

    @property
    def gain(self) -> float | None:
        if self.psnr is None or self.base_psnr is None:
            return None
        return self.psnr - self.base_psnr


@dataclass
class Report:
    convention: metrics.Convention
    rows: list[Row] = field(default_factory=list)
    unmatched_out: list[str] = field(default_factory=list)
    unmatched_gt: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[Row]:
        return [r for r in self.rows if r.error is None]

    def mean(self) -> dict:
        rows = self.scored
        if not rows:
            return {}
        def avg(values: list[float | None]) -> float | None:
            vals = [v for v in values if v is not None]
            # an identical pair has infinite PSNR; the mean over finite values says more than "inf"
            finite = [v for v in vals if math.isfinite(v)]
            return float(np.mean(finite)) if finite else (math.inf if vals else None)
        return {
            "psnr": avg([r.psnr for r in rows]), "ssim": avg([r.ssim for r in rows]),
            "base_psnr": avg([r.base_psnr for r in rows]), "base_ssim": avg([r.base_ssim for r in rows]),
            "gain": avg([r.gain for r in rows]), "images": len(rows),
        }

    def worst(self, n: int) -> list[Row]:
        """The ``n`` scored images with the smallest gain (or lowest PSNR without a baseline)."""
        key = (lambda r: r.gain) if any(r.gain is not None for r in self.scored) else (lambda r: r.psnr)
        return sorted(self.scored, key=key)[:n]

    def as_dict(self) -> dict:
        rows = [asdict(r) | {"gain": r.gain} for r in self.rows]
        return {
            "convention": asdict(self.convention) | {"description": self.convention.describe()},
            "rows": rows, "mean": self.mean(),
            "unmatched_out": self.unmatched_out, "unmatched_gt": self.unmatched_gt, "ambiguous": self.ambiguous,
        }


def index_folder(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Map "relative/dir/stem" -> file for every image under ``folder``; also the keys held by 2+ files."""
    found: dict[str, list[Path]] = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and imagefile.is_image_path(p) and not p.name.startswith("."):
            rel = p.relative_to(folder)
            found.setdefault(str(rel.with_suffix("")), []).append(p)
    return {k: v[0] for k, v in found.items() if len(v) == 1}, sorted(k for k, v in found.items() if len(v) > 1)


def load_rgb(path: Path) -> np.ndarray:
    """Pixels to score: RGB (gray is repeated to three channels), 8 or 16 bit; alpha is ignored."""
    pic = imagefile.read(path)
    return np.repeat(pic.color, 3, axis=2) if pic.gray else pic.color


def score_folders(out_dir: Path, gt_dir: Path, baseline_dir: Path | None = None, convention: metrics.Convention = metrics.DEFAULT) -> Report:
    outs, amb_out = index_folder(out_dir)
    gts, amb_gt = index_folder(gt_dir)
    bases, amb_base = index_folder(baseline_dir) if baseline_dir else ({}, [])
    report = Report(convention)
    report.ambiguous = [f"{out_dir}/{k}.*" for k in amb_out] + [f"{gt_dir}/{k}.*" for k in amb_gt] + [f"{baseline_dir}/{k}.*" for k in amb_base]
    report.unmatched_out = [str(outs[k]) for k in sorted(outs) if k not in gts]
    report.unmatched_gt = [str(gts[k]) for k in sorted(gts) if k not in outs]
    for key in sorted(k for k in outs if k in gts):
        row = Row(key)
        try:
            gt = load_rgb(gts[key])
            out = load_rgb(outs[key])
            if out.shape != gt.shape:
                raise ValueError(f"size {out.shape[1]}x{out.shape[0]} differs from ground truth {gt.shape[1]}x{gt.shape[0]}")
            row.psnr, row.ssim = metrics.psnr_ssim(out, gt, convention)
            if baseline_dir is not None:
                if key not in bases:
                    raise ValueError(f"no baseline image for it in {baseline_dir}")
                base = load_rgb(bases[key])
                if base.shape != gt.shape:
                    raise ValueError(f"baseline size {base.shape[1]}x{base.shape[0]} differs from ground truth")
                row.base_psnr, row.base_ssim = metrics.psnr_ssim(base, gt, convention)
        except imagefile.ImageFileError as e:
            row.psnr = row.ssim = row.base_psnr = row.base_ssim = None
            row.error = f"{e.path}: {e.reason}"
        except ValueError as e:
            row.psnr = row.ssim = row.base_psnr = row.base_ssim = None
            row.error = str(e)
        report.rows.append(row)
    return report


def write_csv(report: Report, path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "psnr", "ssim", "baseline_psnr", "baseline_ssim", "gain", "error"])
        for r in report.rows:
            w.writerow([r.name, r.psnr, r.ssim, r.base_psnr, r.base_ssim, r.gain, r.error or ""])
        m = report.mean()
        if m:
            w.writerow(["MEAN", m["psnr"], m["ssim"], m["base_psnr"], m["base_ssim"], m["gain"], ""])


def _json_safe(value):
    """JSON has no infinity: an identical pair's PSNR is written as the string "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_json(report: Report, path: Path) -> None:
    Path(path).write_text(json.dumps(_json_safe(report.as_dict()), indent=2))


def write_figures(report: Report, out_dir: Path, gt_dir: Path, baseline_dir: Path, figure_dir: Path) -> int:
    """degraded | output | ground truth for every scored image, with its numbers; returns the count."""
    from PIL import Image

    from sharpkd import figures

    outs, _ = index_folder(out_dir)
    gts, _ = index_folder(gt_dir)
    bases, _ = index_folder(baseline_dir)
    figure_dir = Path(figure_dir)
    n = 0
    for r in report.scored:
        panels = [
            (f"degraded\nPSNR {r.base_psnr:.2f} dB  SSIM {r.base_ssim:.4f}", load_rgb(bases[r.name])),
            (f"output ({r.gain:+.2f} dB)\nPSNR {r.psnr:.2f} dB  SSIM {r.ssim:.4f}", load_rgb(outs[r.name])),
            ("ground truth", load_rgb(gts[r.name])),
        ]
        path = figure_dir / f"{r.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(figures.comparison(panels)).save(path)
        n += 1
    return n
