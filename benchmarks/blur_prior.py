"""Can slight blur be told from sharp? The bundled estimator against a classical sharpness measure.

    python benchmarks/blur_prior.py --dataset mixed [--every 17] [--blurs 0.4 0.6 0.8 1.0]

Why: the default model leaves photos with Gaussian blur 0.6 alone (+0.00 / +0.04 dB in the sweep) while,
told the truth, it gains +1.4 dB on them; the calibration maps every guess up to the largest one of a
sharp training photo to "clean", because telling a sharp photo it is blurred over-sharpens it. This
measures how far apart sharp and slightly blurred photos are, photo by photo, under two measures:

- the general model's estimator, its raw blur guess (8 most textured 128 px crops);
- the re-blur ratio (Crete-Roffet et al., 2007): blur the luma with a Gaussian of sigma 1 and take the
  gradient left at the strongest 1 % of the photo's gradients over what was there. A sharp edge loses
  much of its gradient to the re-blur (ratio near 0), an edge already blurred little (near 1).

For each blur, on every ``--every``-th training photo from the 6th: the quantiles of each measure, and
the share of blurred photos above the largest sharp photo's value and above the 95 % quantile: the
share a calibration that leaves every (or 95 % of) sharp photo(s) alone could detect. Training photos
only.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from skimage.filters import gaussian

from sharpkd import pretrained
from sharpkd.degrade import Degradation, apply
from sharpkd.metrics import rgb_to_y
from sharpkd.pairs import find_dataset, load_split, to_tensor


def reblur_ratio(rgb: np.ndarray, top: float = 0.01) -> float:
    """Gradient kept after a sigma-1 re-blur at the ``top`` share of strongest gradients (HxWx3 uint8)."""
    y = rgb_to_y(rgb.astype(np.float64))
    blurred = gaussian(y, sigma=1.0, preserve_range=True)
    grads = [np.abs(np.diff(img, axis=axis)).ravel() for axis in (0, 1) for img in (y, blurred)]
    sharp, soft = np.concatenate(grads[0::2]), np.concatenate(grads[1::2])
    strongest = sharp >= np.quantile(sharp, 1 - top)
    return float(soft[strongest].sum() / max(sharp[strongest].sum(), 1e-9))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mixed")
    ap.add_argument("--every", type=int, default=17)
    ap.add_argument("--blurs", type=float, nargs="+", default=[0.4, 0.6, 0.8, 1.0])
    args = ap.parse_args()
    photos = load_split(find_dataset(args.dataset), "train")[5 :: args.every]
    model = pretrained.load("general").model.eval()
    values: dict[str, dict[str, np.ndarray]] = {}
    for sigma in [0.0, *args.blurs]:
        rng = np.random.default_rng(0)
        guess, ratio = [], []
        for p in photos:
            img = p.hr if sigma == 0 else apply(p.hr, Degradation(sigma, sigma), rng)
            with torch.no_grad():
                guess.append(float(model.estimate(to_tensor(img), raw=True)[0, 0]))
            ratio.append(reblur_ratio(img))
        values[f"blur {sigma:g}" if sigma else "sharp"] = {"estimator": np.array(guess), "re-blur": np.array(ratio)}
    print(f"{len(photos)} training photos (every {args.every}th from the 6th)")
    sharp = values["sharp"]
    for measure in ("estimator", "re-blur"):
        print(f"\n{measure}: quantiles 0 / 10 / 50 / 90 / 100 %; share above the sharp photos' max | 95 % quantile")
        for name, v in values.items():
            q = " / ".join(f"{x:.3f}" for x in np.quantile(v[measure], [0, 0.1, 0.5, 0.9, 1]))
            above = "" if name == "sharp" else (
                f"   {np.mean(v[measure] > sharp[measure].max()):4.0%} | {np.mean(v[measure] > np.quantile(sharp[measure], 0.95)):4.0%}")
            print(f"  {name:10s} {q}{above}")


if __name__ == "__main__":
    main()
