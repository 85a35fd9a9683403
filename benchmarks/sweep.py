"""Degradation sweep: how each model treats sharp, soft, upscaled, JPEG and noisy photos. Prints a table.

    python benchmarks/sweep.py --dataset mixed [--models general x4] [--weights RUN ...] [--usm 2.0,1.0] [--told] [--json F]

For every validation HR photo of the prepared data set and every case below, the photo is degraded, the
model restores it, and PSNR-Y (project convention) of the input and of the output against the original
is recorded, per photo, and reported per part of the data set (its source folders): the mean gain and
the worst photo's. "gain" is output minus input. The sharp original (sigma 0, scale 1) shows whether a model
leaves good photos alone: there "input" is inf, so the table gives the output's PSNR to the original.
``--told`` adds each general model *told* the true conditions of the case (no estimate; noise and JPEG alone
through its cleanup network, where it has one): what its network
can do when the estimator is right.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from sharpkd import metrics, pretrained
from sharpkd.classical import UnsharpMask
from sharpkd.degrade import Degradation, apply
from sharpkd.inference import enhance
from sharpkd.pairs import find_dataset, load_split, parts

CASES = {
    "sharp original": Degradation(),
    "blur 0.6": Degradation(sigma_x=0.6, sigma_y=0.6),
    "blur 1.0, x2": Degradation(sigma_x=1.0, sigma_y=1.0, scale=2.0),
    "blur 0.5, x3": Degradation(sigma_x=0.5, sigma_y=0.5, scale=3.0),
    "blur 1.0, x4 (canonical)": Degradation(sigma_x=1.0, sigma_y=1.0, scale=4.0),
    "blur 1.6, x4": Degradation(sigma_x=1.6, sigma_y=1.6, scale=4.0),
    "JPEG q40": Degradation(jpeg=40),
    "noise 5": Degradation(noise=5.0),
}


def sweep(restorers: dict, photos: list[np.ndarray], cases: list[str] | None = None) -> dict:
    """{case: {"input": [PSNR-Y per photo], name: [PSNR-Y per photo of each restorer]}}; each restorer
    is called with the degraded photo and the case's :class:`Degradation`. ``cases``: names of
    :data:`CASES` (default all)."""
    table = {}
    for case, d in CASES.items():
        if cases and case not in cases:
            continue
        rng = np.random.default_rng(0)
        degraded = [apply(hr, d, rng) for hr in photos]
        row = {"input": [metrics.psnr(lq, hr) for lq, hr in zip(degraded, photos)]}
        for name, restore in restorers.items():
            row[name] = [metrics.psnr(restore(lq, d), hr) for lq, hr in zip(degraded, photos)]
        table[case] = row
    return table


def told(loaded: pretrained.Loaded, lq: np.ndarray, d: Degradation) -> np.ndarray:
    """A general model's output when told the true conditions of ``d`` (whole photo, one pass, through
    the same inference core as ``enhance``): by its cleanup network where it has one and ``d`` is noise
    and/or JPEG alone (the photos that stage takes), else by its general network."""
    import torch

    from sharpkd.degrade import conditions
    from sharpkd.models.general import Told

    cond = conditions(d)
    artifacts_only = max(cond[:2]) == 0 and max(cond[2:]) > 0
    net = loaded.model.cleanup.net if artifacts_only and loaded.model.cleanup is not None else loaded.model.net
    network = Told(net, torch.tensor([cond], dtype=torch.float32))
    return enhance(replace(loaded, model=network, conditioned=False), lq, tile=0)


def print_table(table: dict, title: str) -> None:
    """Per case: the input's mean PSNR-Y; per model the mean gain and, in brackets, the worst photo's
    gain. For the sharp original (input = inf): the output's mean PSNR-Y to the original and the lowest."""
    names = list(next(iter(table.values())))
    print(f"{title}: PSNR-Y dB ({metrics.DEFAULT.describe()}); per model: mean gain (worst photo)")
    print(f"{'case':26}" + "".join(f"{n:>24}" for n in names))
    for case, row in table.items():
        base = np.array(row["input"])
        cells = [f"{np.mean(base):.2f}".rjust(24)]
        for n in names[1:]:
            v = np.array(row[n])
            if not np.isfinite(base).all():
                mean = "inf" if np.isinf(v).all() else f"{np.mean(np.minimum(v, 99)):.2f}"
                cells.append(f"{mean} (min {np.min(v):.2f})".rjust(24))
            else:
                gain = v - base
                cells.append(f"{np.mean(gain):+.2f} ({np.min(gain):+.2f})".rjust(24))
        print(f"{case:26}" + "".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", help="prepared data set (its val split is used) [default: newest]")
    ap.add_argument("--models", nargs="*", default=["general"], help="bundled models")
    ap.add_argument("--weights", nargs="*", default=[], help="run folders or weights files")
    ap.add_argument("--usm", help="also an unsharp mask RADIUS,AMOUNT (e.g. the one tuned on the training photos)")
    ap.add_argument("--told", action="store_true", help="also each general model told the true conditions")
    ap.add_argument("--json", type=Path, help="also write the per-photo table as JSON")
    ap.add_argument("--cases", nargs="*", choices=list(CASES), help="only these cases [default: all]")
    args = ap.parse_args()
    dataset = find_dataset(args.dataset)
    val = load_split(dataset, "val")
    part_of = parts(dataset)
    restorers = {}
    if args.usm:
        r, a = (float(v) for v in args.usm.split(","))
        usm = UnsharpMask(r, a)
        restorers[f"unsharp {r},{a}"] = lambda lq, d: usm(lq)
    loaded_models = [pretrained.load(name) for name in args.models] + [pretrained.load_file(Path(w)) for w in args.weights]
    for loaded in loaded_models:
        restorers[loaded.name] = lambda lq, d, m=loaded: enhance(m, lq, tile=0)
        if args.told and loaded.conditioned:
            restorers[f"{loaded.name} told"] = lambda lq, d, m=loaded: told(m, lq, d)
    results = {}
    for part in dict.fromkeys(part_of[p.name] for p in val):
        photos = [p.hr for p in val if part_of[p.name] == part]
        results[part] = sweep(restorers, photos, args.cases)
        print_table(results[part], f"{part}: {len(photos)} validation photos")
        print(flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
