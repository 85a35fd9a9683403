"""Would a blur floor help slight blur? Photos the general model finds clean, told a small blur instead.

    python benchmarks/blur_floor.py --dataset mixed [--told-every 16] [--every 8] [--floors 0.4 0.45]

Slight blur (sigma 0.6) cannot be told from sharp (docs/model-card.md), so the general model leaves such
photos unchanged. The idea measured here: tell every photo it finds clean a small blur all the same, a
"floor", since the network told a small blur barely moves a sharp photo. On training photos only:

1. **Told** (every ``--told-every``-th training photo, no estimate): sharp originals and their blur-0.6
   copies told blur sigma 0.1 ... 0.6; the sharp photos' PSNR to themselves, the blur-0.6 gain.
2. **Blind pipeline** (every ``--every``-th training photo, degraded each way of :data:`CASES`): a photo the
   model leaves unchanged is restored told the estimated conditions with the blur raised to the floor,
   where the cleanup stage measured blocking below B and noise below N and the raw blur guess is at least
   R (a gate; ungated: every such photo); every other photo as ``enhance`` does. Prints, per floor, the
   ungated table and the gates (of a grid) with the fewest photo-cases made worse than today by more than
   0.1 dB (and worse than their input), then the best gate's table.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace

import numpy as np
import torch

from sharpkd import metrics, pretrained
from sharpkd.degrade import Degradation, apply
from sharpkd.inference import enhance
from sharpkd.models.cleanup import tensor_reader
from sharpkd.models.general import CLEAN_LEVEL, Told
from sharpkd.pairs import find_dataset, load_split, to_tensor

CASES = {
    "sharp": Degradation(), "blur 0.4": Degradation(0.4, 0.4), "blur 0.6": Degradation(0.6, 0.6),
    "blur 0.8": Degradation(0.8, 0.8), "x2": Degradation(scale=2.0), "JPEG q90": Degradation(jpeg=90),
    "JPEG q80": Degradation(jpeg=80), "JPEG q70": Degradation(jpeg=70), "JPEG q55": Degradation(jpeg=55),
    "JPEG q40": Degradation(jpeg=40), "noise 1": Degradation(noise=1.0), "noise 2": Degradation(noise=2.0),
    "noise 5": Degradation(noise=5.0), "noise 4 + JPEG q60": Degradation(noise=4.0, jpeg=60),
    "blur 0.6 + JPEG q80": Degradation(0.6, 0.6, jpeg=80), "blur 0.6 + noise 2": Degradation(0.6, 0.6, noise=2.0),
    "blur 0.6 + JPEG q40": Degradation(0.6, 0.6, jpeg=40), "blur 0.6 + noise 5": Degradation(0.6, 0.6, noise=5.0),
}
GATES = list(itertools.product(
    [0.05, 0.08, 0.1, 0.15, 0.2, 0.3, float("inf")], [0.3, 0.5, 1.0, 1.5, float("inf")], [0.0, 0.001, 0.003, 0.01]
))  # (max blocking B, max noise N, min raw blur R)


def told(loaded: pretrained.Loaded, cond: torch.Tensor, lq: np.ndarray) -> np.ndarray:
    network = Told(loaded.model.net, cond)
    return enhance(replace(loaded, model=network, conditioned=False), lq, tile=0)


def told_curve(loaded: pretrained.Loaded, photos: list[np.ndarray]) -> None:
    blurred = [apply(hr, CASES["blur 0.6"], np.random.default_rng(0)) for hr in photos]
    base = np.array([metrics.psnr(b, hr) for b, hr in zip(blurred, photos)])
    print(f"told, {len(photos)} training photos | sharp original: min / median dB | blur 0.6: mean gain (worst)")
    for sigma in (0.1, 0.2, 0.3, 0.4, 0.6):
        cond = torch.tensor([[sigma / 2, 0.0, 0.0, 0.0]])
        sharp = np.array([metrics.psnr(told(loaded, cond, hr), hr) for hr in photos])
        gain = np.array([metrics.psnr(told(loaded, cond, b), hr) for b, hr in zip(blurred, photos)]) - base
        print(f"  sigma {sigma:.1f} | {sharp.min():.2f} / {np.median(sharp):.2f} | {gain.mean():+.3f} ({gain.min():+.3f})")


def records(loaded: pretrained.Loaded, photos: list[np.ndarray], floors: list[float]) -> list[dict]:
    """Per photo and case: input and today's PSNR, whether the photo is left unchanged, what the gate sees,
    and (for those left unchanged) the PSNR with each floor."""
    model, rows = loaded.model, []
    for hr in photos:
        for case, d in CASES.items():
            lq = hr if d == Degradation() else apply(hr, d, np.random.default_rng(0))
            x = to_tensor(lq)
            h, w = x.shape[-2:]
            raw, cond = model.guess_photo(tensor_reader(x), h, w)
            stats = model.cleanup.decide(tensor_reader(x), h, w, CLEAN_LEVEL).stats
            run = loaded.for_photo(tensor_reader(x), h, w)
            row = {"case": case, "input": metrics.psnr(lq, hr), "now": metrics.psnr(lq if not run.changes else enhance(loaded, lq, tile=0), hr),
                   "clean": not run.changes, "blocking": stats.blocking, "noise": stats.noise, "raw_blur": float(raw[0, 0])}
            if not run.changes:
                for f in floors:
                    floored = cond.clone()
                    floored[0, 0] = floored[0, 0].clamp(min=f / 2)
                    row[f] = metrics.psnr(told(loaded, floored, lq), hr)
            rows.append(row)
    return rows


def evaluate(rows: list[dict], floor: float, gate: tuple[float, float, float]) -> dict:
    """{case: (mean gain or, for the sharp originals, min PSNR; worst gain; photo-cases made worse by the
    floor; photos floored)}."""
    b, n, r = gate
    out = {}
    for case in CASES:
        sel = [row for row in rows if row["case"] == case]
        use = [row["clean"] and row["blocking"] < b and row["noise"] < n and row["raw_blur"] >= r for row in sel]
        value = np.array([row[floor] if u else row["now"] for row, u in zip(sel, use)])
        now, base = np.array([row["now"] for row in sel]), np.array([row["input"] for row in sel])
        if case == "sharp":
            out[case] = (value.min(), value.min(), 0, sum(use))
            continue
        gain = value - base
        out[case] = (gain.mean(), gain.min(), int(((gain < -0.1) & (value < now - 0.1)).sum()), sum(use))
    return out


def print_table(result: dict) -> None:
    for case, (mean, worst, worse, floored) in result.items():
        what = f"min {mean:.2f} dB" if case == "sharp" else f"{mean:+.2f} ({worst:+.2f})"
        print(f"    {case:22} {what:>18}  made worse {worse:3}  floored {floored:3}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset")
    ap.add_argument("--told-every", type=int, default=16)
    ap.add_argument("--every", type=int, default=8)
    ap.add_argument("--floors", type=float, nargs="*", default=[0.4, 0.45], help="blur sigma")
    a = ap.parse_args()
    loaded = pretrained.load("general")
    train = [p.hr for p in load_split(find_dataset(a.dataset), "train")]
    told_curve(loaded, train[:: a.told_every])
    rows = records(loaded, train[:: a.every], a.floors)
    print(f"\nblind pipeline, {len(train[:: a.every])} training photos; today: mean gain (worst)")
    print_table(evaluate(rows, a.floors[0], (-1.0, -1.0, 2.0)))  # no photo floored
    for f in a.floors:
        print(f"floor sigma {f}, ungated: every photo left unchanged today is floored")
        print_table(evaluate(rows, f, (float("inf"), float("inf"), 0.0)))
        results = {g: evaluate(rows, f, g) for g in GATES}
        worse = {g: sum(v[2] for v in res.values()) for g, res in results.items()}
        ranked = sorted(GATES, key=lambda g: (worse[g], -results[g]["blur 0.6"][0]))
        print(f"floor sigma {f}, gates (max blocking, max noise, min raw blur) with the fewest photo-cases made worse:")
        for g in ranked[:5]:
            print(f"    {g}: made worse {worse[g]}, blur 0.6 {results[g]['blur 0.6'][0]:+.3f}, sharp min {results[g]['sharp'][0]:.2f} dB")
        print(f"  the best, {ranked[0]}:")
        print_table(results[ranked[0]])


if __name__ == "__main__":
    main()
