"""Choose the cleanup stage's calibration on training photos: how many photo-cases each choice makes worse.

    python benchmarks/cleanup_safety.py WEIGHTS --dataset mixed [--every 17] [--quantiles 0.9 0.95 0.99] [--scales 0.6 0.8 1.0] [--noise-scales 0.5 0.6]
        [--cases "noise 5" ...] [--losers] [--own-knots]

WEIGHTS: a general model with a cleanup stage (``tools/add_cleanup.py``). For every ``--every``-th training
photo from the 6th (a quarter of them are among ``add_cleanup``'s calibration photos, every 4th) and each
case below, the photo is degraded and measured once; then, for each choice of the zero
quantile (the share of sharp calibration photos whose statistic maps to 0) and the scale (the factor on
the told conditions), the knots are refitted from the *calibration photos' statistics* stored in WEIGHTS'
info, and the cleanup network restores the photo told what those knots give (or leaves it alone; a photo
the estimator guesses soft is counted as unchanged: it is cleaned and then restored by the general network,
which ``benchmarks/sweep.py`` measures; one only a little soft gets no JPEG cleanup). Prints
per choice and case the mean gain in PSNR-Y, the worst photo, and how many photo-cases lose more than
0.1 dB (for the sharp originals: how many fall below 40 dB); with ``--losers`` also those photos, with
what was measured on them and what the network was told. Validation photos are never used here.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from sharpkd import metrics, pretrained
from sharpkd.degrade import Degradation, apply
from sharpkd.inference import enhance
from sharpkd.models.cleanup import (
    MAX_TEXTURE_RATIO,
    ToldCleanup,
    fitted_knots,
    tensor_reader,
)
from sharpkd.models.general import CLEAN_LEVEL
from sharpkd.pairs import find_dataset, load_split, to_tensor

CASES = {
    "sharp": Degradation(),
    "noise 2": Degradation(noise=2.0),
    "noise 5": Degradation(noise=5.0),
    "noise 8": Degradation(noise=8.0),
    "JPEG q70": Degradation(jpeg=70),
    "JPEG q40": Degradation(jpeg=40),
    "JPEG q30": Degradation(jpeg=30),
    "noise 4 + JPEG q60": Degradation(noise=4.0, jpeg=60),
    "blur 0.6": Degradation(0.6, 0.6),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--dataset", default="mixed")
    ap.add_argument("--every", type=int, default=17)
    ap.add_argument("--quantiles", type=float, nargs="+", default=[0.9, 0.95, 0.99])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.6, 0.8, 1.0])
    ap.add_argument("--noise-scales", type=float, nargs="+", help="scales of the noise condition to try with each --scales [default: the same]")
    ap.add_argument("--cases", nargs="+", choices=list(CASES), help="only these cases [default: all]")
    ap.add_argument("--losers", action="store_true", help="name the photos made worse by more than 0.1 dB")
    ap.add_argument("--own-knots", action="store_true",
                    help="use WEIGHTS' knots as they are (bundled weights record no calibration to refit from)")
    ap.add_argument("--max-ratios", type=float, nargs="+", default=[MAX_TEXTURE_RATIO],
                    help="largest texture ratio at which noise cleanup goes ahead (the check of Cleanup.decide; inf: no check)")
    a = ap.parse_args()
    loaded = pretrained.load_file(a.weights)
    info = {} if a.own_knots else json.loads(torch.load(a.weights, weights_only=True)["info"])
    model = loaded.model
    pairs = load_split(find_dataset(a.dataset), "train")[5 :: a.every]
    photos, names = [p.hr for p in pairs], [p.name for p in pairs]
    print(f"{len(photos)} training photos (every {a.every}th from the 6th); PSNR-Y dB")
    measured = {}  # case -> [(lq, hr, stats, input psnr)]
    for case, d in CASES.items():
        if a.cases and case not in a.cases:
            continue
        rng = np.random.default_rng(0)
        rows = []
        for hr in photos:
            lq = hr if d == Degradation() else apply(hr, d, rng)
            x = to_tensor(lq)
            raw, cond = model.guess_photo(tensor_reader(x), x.shape[-2], x.shape[-1])
            if float(cond[0, :2].max()) >= CLEAN_LEVEL:  # soft: cleaned, then restored by the general network (sweep.py)
                rows.append((lq, hr, None, metrics.psnr(lq, hr)))
                continue
            rows.append((lq, hr, (x, raw, cond), metrics.psnr(lq, hr)))
        measured[case] = rows
    choices = [(q, s, n, r) for q in a.quantiles for s in a.scales for n in (a.noise_scales or [s]) for r in a.max_ratios]
    if a.own_knots:
        choices = [(None, None, None, r) for r in a.max_ratios]
    for quantile, scale, noise_scale, max_ratio in choices:
        if a.own_knots:
            print(f"the weights' own knots, max texture ratio {max_ratio}:")
        else:
            model.cleanup.knots.copy_(fitted_knots(info | {"zero_quantile": quantile, "scale": scale, "noise_scale": noise_scale}))
            print(f"zero quantile {quantile}, scale {scale}, noise scale {noise_scale}, max texture ratio {max_ratio}:")
        for case, rows in measured.items():
            gains, touched, losers = [], 0, []
            for name, (lq, hr, guessed, base) in zip(names, rows):
                if guessed is None:
                    gains.append(np.inf if np.isinf(base) else 0.0)
                    continue
                x, raw, cond = guessed
                decision = model.cleanup.decide(tensor_reader(x), x.shape[-2], x.shape[-1], CLEAN_LEVEL, max_ratio)
                noise, jpeg = pretrained.artifacts_to_clean(model, raw, cond, decision.noise, decision.jpeg)
                if max(noise, jpeg) < CLEAN_LEVEL:
                    out = lq
                else:
                    touched += 1
                    net = ToldCleanup(model.cleanup, noise, jpeg)
                    out = enhance(replace(loaded, model=net, conditioned=False), lq, tile=0)
                p = metrics.psnr(out, hr)
                gains.append(p if np.isinf(base) else p - base)
                if gains[-1] < -0.1:
                    losers.append(f"{name} {gains[-1]:+.2f} dB ({decision.note()}; told noise {noise:.2f}, JPEG {jpeg:.2f})")
            g = np.array(gains)
            if case == "sharp":
                print(f"  {case:20} touched {touched:3}/{len(rows)}  min {np.min(np.minimum(g, 99)):6.2f} dB, below 40 dB: {int((g < 40).sum())}")
            else:
                print(f"  {case:20} touched {touched:3}/{len(rows)}  mean {g.mean():+.3f} worst {g.min():+.3f}  worse by >0.1: {int((g < -0.1).sum())}")
            for line in losers if a.losers else []:
                print(f"      {line}")


if __name__ == "__main__":
    main()
