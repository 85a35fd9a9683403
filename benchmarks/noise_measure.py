"""How the cleanup stage's noise statistic reads sharp and noisy training photos, per texture share.

    python benchmarks/noise_measure.py --dataset mixed [--every 4] [--shares 0 0.1 0.2 0.3 0.4] [--losers NAME ...]

Why: the finest Haar detail alone takes fine texture for noise (training photos of foliage, fabric or
small size read as noise sigma 5 to 11 as they are, and noise cleanup smeared them), so the statistic
subtracts a share of the next coarser scale's energy (``sharpkd.models.cleanup.TEXTURE_SHARE``). For
each share, on every ``--every``-th training photo from the 6th, sharp and with Gaussian noise sigma 2,
5 and 8: the statistic's quantiles (5 / 50 / 90 / 95 % / max). ``--losers``: photos to list apart (e.g.
those ``benchmarks/cleanup_safety.py --losers`` names), with how many of them read 0 under noise 5.
Training photos only.
"""

from __future__ import annotations

import argparse

import numpy as np

from sharpkd.degrade import Degradation, apply
from sharpkd.models.cleanup import measure_tensor
from sharpkd.pairs import find_dataset, load_split, to_tensor

CASES = {"sharp": Degradation(), "noise 2": Degradation(noise=2.0), "noise 5": Degradation(noise=5.0), "noise 8": Degradation(noise=8.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mixed")
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4])
    ap.add_argument("--losers", nargs="*", default=[], help="photo names to report apart")
    a = ap.parse_args()
    pairs = load_split(find_dataset(a.dataset), "train")[5 :: a.every]
    print(f"{len(pairs)} training photos (every {a.every}th from the 6th); noise statistic, quantiles 5 / 50 / 90 / 95 % / max")
    degraded = {}
    for case, d in CASES.items():
        rng = np.random.default_rng(0)
        degraded[case] = [to_tensor(p.hr if d == Degradation() else apply(p.hr, d, rng)) for p in pairs]
    apart = np.array([p.name in a.losers for p in pairs])
    for share in a.shares:
        print(f"texture share {share}:")
        for case, xs in degraded.items():
            v = np.array([measure_tensor(x, share).noise for x in xs])
            q = " / ".join(f"{x:5.2f}" for x in np.quantile(v, [0.05, 0.5, 0.9, 0.95, 1.0]))
            extra = ""
            if apart.any():
                extra = f"   listed photos: {' '.join(f'{x:.1f}' for x in np.sort(v[apart]))}"
                if case == "noise 5":
                    extra += f" ({int((v[apart] == 0).sum())} of {int(apart.sum())} read 0)"
            print(f"  {case:8s} {q}{extra}")


if __name__ == "__main__":
    main()
