"""Train/validation gap: each model's PSNR-Y gain on photos it was trained on and on held-out ones.

    python benchmarks/train_val_gap.py --dataset sun80 [--models teacher x4] [--weights RUN ...] [--every 7]

A model that gains much more on its training photos than on the validation photos has memorised them:
more steps will not help it, more (or more varied) training photos would. The training photos measured
are every ``--every``-th training pair (10 of the 70 by default), degraded by the data set's recipe as in
training; the validation photos are the data set's validation split, reported per part (source folder)
when the data set was prepared from several. Project convention (PSNR-Y, 4 px border cropped), the whole
image in one pass. The gap is the training gain minus the gain on all validation photos.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sharpkd import metrics, pretrained
from sharpkd.pairs import find_dataset, load_split, parts
from sharpkd.training import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="sun80", help="prepared data set (name or folder)")
    ap.add_argument("--models", nargs="*", default=["teacher", "x4"], help="bundled models")
    ap.add_argument("--weights", nargs="*", type=Path, default=[], help="run folders or weights files")
    ap.add_argument("--every", type=int, default=7, help="measure every N-th training pair")
    args = ap.parse_args()
    dataset = find_dataset(args.dataset)
    train, val = load_split(dataset, "train")[:: args.every], load_split(dataset, "val")
    loaded = [pretrained.load(name, device="cpu") for name in args.models]
    loaded += [pretrained.load_file(path, "cpu") for path in args.weights]
    part_of = parts(dataset)
    by_part: dict[str, list] = {}
    for p in val:
        by_part.setdefault(part_of[p.name], []).append(p)
    print(f"{dataset.name}: {len(train)} training photos (every {args.every}th), validation: "
          + ", ".join(f"{k} {len(v)}" for k, v in by_part.items()))
    head = "".join(f" {k[:14] + ' in':>17} {'gain':>6}" for k in by_part)
    print(f"{'model':28} {'train input':>12} {'train gain':>11}{head} {'val gain':>9} {'gap':>6}")
    for item in loaded:
        tr = evaluate(item.model, train, metrics.DEFAULT.crop) if train else {"psnr_in": float("nan"), "gain": float("nan")}
        per = {k: evaluate(item.model, v, metrics.DEFAULT.crop) for k, v in by_part.items()}
        gain_all = sum(r["gain"] * r["images"] for r in per.values()) / len(val)
        cols = "".join(f" {r['psnr_in']:17.2f} {r['gain']:+6.3f}" for r in per.values())
        print(f"{item.name:28} {tr['psnr_in']:12.2f} {tr['gain']:+11.3f}{cols} {gain_all:+9.3f} {tr['gain'] - gain_all:+6.2f}", flush=True)


if __name__ == "__main__":
    main()
