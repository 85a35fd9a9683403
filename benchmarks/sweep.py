"""Degradation sweep: how each model treats sharp, soft, upscaled, JPEG and noisy photos. Prints a table.

    python benchmarks/sweep.py --dataset sun80 [--models student teacher] [--weights RUN ...] [--usm 2.0,1.0]

For every validation HR photo of the prepared data set and every case below, the photo is degraded, the
model restores it, and PSNR-Y (project convention) of the input and of the output against the original
is recorded. "gain" is output minus input. The sharp original (sigma 0, scale 1) shows whether a model
leaves good photos alone: there "input" is inf, so the table gives the output's PSNR to the original.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sharpkd import metrics, pretrained
from sharpkd.classical import UnsharpMask
from sharpkd.degrade import Degradation, apply
from sharpkd.enhance import enhance
from sharpkd.pairs import find_dataset, load_split

CASES = {
    "sharp original": Degradation(),
    "blur 0.6": Degradation(sigma_x=0.6, sigma_y=0.6),
    "blur 1.0, x2": Degradation(sigma_x=1.0, sigma_y=1.0, scale=2.0),
    "blur 0.5, x3": Degradation(sigma_x=0.5, sigma_y=0.5, scale=3.0),
    "blur 1.0, x4 (canonical)": Degradation(sigma_x=1.0, sigma_y=1.0, scale=4.0),
    "blur 1.6, x4": Degradation(sigma_x=1.6, sigma_y=1.6, scale=4.0),
    "JPEG q75": Degradation(jpeg=75),
    "noise 5": Degradation(noise=5.0),
}


def sweep(restorers: dict, photos: list[np.ndarray]) -> dict:
    """{case: {"input": mean PSNR-Y, name: mean PSNR-Y of each restorer}}."""
    table = {}
    for case, d in CASES.items():
        rng = np.random.default_rng(0)
        degraded = [apply(hr, d, rng) for hr in photos]
        row = {"input": float(np.mean([metrics.psnr(lq, hr) for lq, hr in zip(degraded, photos)]))}
        for name, restore in restorers.items():
            row[name] = float(np.mean([metrics.psnr(restore(lq), hr) for lq, hr in zip(degraded, photos)]))
        table[case] = row
    return table


def print_table(table: dict) -> None:
    names = list(next(iter(table.values())))
    print(f"PSNR-Y dB ({metrics.DEFAULT.describe()}); gain over the input in brackets")
    print(f"{'case':26}" + "".join(f"{n:>22}" for n in names))
    for case, row in table.items():
        cells = []
        for n in names:
            v = row[n]
            gain = "" if n == "input" or not np.isfinite(row["input"]) else f" ({v - row['input']:+.2f})"
            cells.append(f"{v:.2f}{gain}".rjust(22))
        print(f"{case:26}" + "".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", help="prepared data set (its val split is used) [default: newest]")
    ap.add_argument("--models", nargs="*", default=["student"], help="bundled models")
    ap.add_argument("--weights", nargs="*", default=[], help="run folders or weights files")
    ap.add_argument("--usm", help="also an unsharp mask RADIUS,AMOUNT (e.g. the one tuned on the training photos)")
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    args = ap.parse_args()
    photos = [p.hr for p in load_split(find_dataset(args.dataset), "val")]
    restorers = {}
    if args.usm:
        r, a = (float(v) for v in args.usm.split(","))
        restorers[f"unsharp {r},{a}"] = UnsharpMask(r, a)
    for name in args.models:
        loaded = pretrained.load(name)
        restorers[name] = lambda lq, m=loaded: enhance(m, lq, tile=0)
    for w in args.weights:
        loaded = pretrained.load_file(Path(w))
        restorers[Path(w).name] = lambda lq, m=loaded: enhance(m, lq, tile=0)
    table = sweep(restorers, photos)
    print(f"{len(photos)} validation photos")
    print_table(table)
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
