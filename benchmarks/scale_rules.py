"""When should a general model's whole-photo scale guess change the scale it is told? Measured on training photos.

    python benchmarks/scale_rules.py W.pt --dataset mixed [--every 8] [--start 3] [--cases canonical "x2 alone"] [--json F]

W: a general model with a pooled scale head (``tools/fit_scale.py``). Every ``--every``-th training photo
from index ``--start`` is degraded the ways of :data:`CASES`; the estimator's crop-averaged guess and the
head's pooled guess are taken once per photo. Photos the estimator finds clean are left alone by every
rule and counted as 0. On the others the network, told the calibrated blur and the scale a rule gives,
restores the whole photo (one restore per distinct scale). Prints, per case and rule: the mean gain
change against the crops' scale, the worst photo's gain over its input, and how many photos end more
than 0.1 dB below what the crops' scale gives. The shipped rule is "raise where crops >= 0.25"
(:data:`sharpkd.models.general.POOLED_SCALE_FROM`).
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
from sharpkd.models.general import CLEAN_LEVEL, POOLED_SCALE_FROM, Told, textured_crops
from sharpkd.pairs import find_dataset, load_split, to_tensor

CASES = {
    "x3 blur 0.5": Degradation(0.5, 0.5, scale=3.0),
    "x3 blur 1.0": Degradation(1.0, 1.0, scale=3.0),
    "canonical": Degradation(1.0, 1.0, scale=4.0),
    "x4 blur 1.6": Degradation(1.6, 1.6, scale=4.0),
    "x4 blur 0.5": Degradation(0.5, 0.5, scale=4.0),
    "x2 blur 1.0": Degradation(1.0, 1.0, scale=2.0),
    "x2 blur 1.5": Degradation(1.5, 1.5, scale=2.0),
    "x2 alone": Degradation(scale=2.0),
    "blur 1.0": Degradation(1.0, 1.0),
    "blur 0.8": Degradation(0.8, 0.8),
}
# rule name -> the scale told, from (the crops' scale, the pooled guess)
RULES = {
    "replace on every soft photo": lambda crops, pooled: pooled,
    "raise (max) on every soft photo": lambda crops, pooled: max(crops, pooled),
    f"raise where crops >= {POOLED_SCALE_FROM}": lambda crops, pooled: max(crops, pooled) if crops >= POOLED_SCALE_FROM else crops,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--every", type=int, default=8)
    ap.add_argument("--start", type=int, default=3)
    ap.add_argument("--cases", nargs="*", choices=list(CASES), help="only these cases [default: all]")
    ap.add_argument("--json", type=Path, help="also write the per-photo gains as JSON")
    a = ap.parse_args()
    loaded = pretrained.load_file(a.weights)
    model = loaded.model
    if loaded.arch != "general" or model.estimator.scale_head is None:
        raise SystemExit(f"{a.weights}: not a general model with a pooled scale head (tools/fit_scale.py)")
    pairs = load_split(find_dataset(a.dataset), "train")[a.start :: a.every]
    print(f"{len(pairs)} training photos (every {a.every}th from index {a.start}); PSNR-Y dB")
    results = {}
    for case, d in CASES.items():
        if a.cases and case not in a.cases:
            continue
        rng = np.random.default_rng(0)
        gains = {"crops": []} | {rule: [] for rule in RULES}
        for p in pairs:
            lq = apply(p.hr, d, rng)
            x = to_tensor(lq)
            with torch.no_grad():
                features = model.estimator.crop_features(textured_crops(x))
                raw = model.estimator.crops_guess(features)
                blur = float(model.estimator.calibrated(raw)[0, 0])
                pooled = float(model.estimator.pooled_scale_guess(features))
            crop_scale = float(raw[0, 1])
            if max(blur, crop_scale) < CLEAN_LEVEL:  # found clean: no rule touches it
                for v in gains.values():
                    v.append(0.0)
                continue
            base = metrics.psnr(lq, p.hr)
            told: dict[float, float] = {}

            def gain(scale: float, lq=lq, hr=p.hr, blur=blur, told=told, base=base) -> float:
                if scale not in told:
                    net = Told(model.net, torch.tensor([[blur, scale, 0.0, 0.0]]))
                    told[scale] = metrics.psnr(enhance(replace(loaded, model=net, conditioned=False), lq, tile=0), hr) - base
                return told[scale]

            gains["crops"].append(gain(crop_scale))
            for rule, choose in RULES.items():
                gains[rule].append(gain(choose(crop_scale, pooled)))
        results[case] = gains
        ref = np.array(gains["crops"])
        print(f"{case}: crops' scale {ref.mean():+.3f} (worst {ref.min():+.2f})")
        for rule in RULES:
            g = np.array(gains[rule])
            print(f"  {rule:34s} {g.mean() - ref.mean():+.3f}  worst {g.min():+.2f}  worse than the crops' by > 0.1 dB: {(g < ref - 0.1).sum()}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
