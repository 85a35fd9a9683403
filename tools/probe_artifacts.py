"""Does a general model's network do anything for noise and JPEG? (maintainers' tool, docs/model-card.md)

    python tools/probe_artifacts.py WEIGHTS|general [...] [--dataset mixed] [--train-steps 200]

On 128 px crops of the data set's validation photos, for noise 5, JPEG q40 and the canonical recipe:
PSNR (RGB, 0..1) of the degraded input, of the network told the true conditions, and told all-zero
conditions, plus the estimator's raw guesses (blur, scale, noise, JPEG). ``--train-steps N`` then
fine-tunes the (first) model's network on noise-only crops of the training photos (told the truth, L1,
Adam) and prints the validation crops' PSNR every 50 steps: whether the network can learn noise at all
from where it is, as opposed to not having been shown it enough. With ``--range NAME`` (a data set
prepared with ``--degradations general``) the fine-tuning crops come from that data set's whole
degradation range instead, every crop told its true conditions (training tells only half of each batch
the truth, the other half the estimator's guess): does the mixture, told the truth, teach noise?
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sharpkd import degrade, pretrained
from sharpkd.pairs import (
    CropSampler,
    find_dataset,
    load_split,
    read_manifest,
    to_tensor,
)
from sharpkd.train_teacher import general_degradations
from sharpkd.training import TrainError

CASES = {
    "noise 5": degrade.Degradation(noise=5.0),
    "JPEG q40": degrade.Degradation(jpeg=40),
    "canonical": degrade.Degradation(sigma_x=1.0, sigma_y=1.0, scale=4.0),
}


def crops(pairs: list, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``size`` px HR crops of ``pairs`` (photos smaller than that skipped)."""
    pairs = [p for p in pairs if min(p.hr.shape[:2]) > size]
    out = []
    for _ in range(n):
        hr = pairs[rng.integers(len(pairs))].hr
        y, x = rng.integers(0, hr.shape[0] - size), rng.integers(0, hr.shape[1] - size)
        out.append(hr[y : y + size, x : x + size])
    return np.stack(out)


def degraded(hr: np.ndarray, d: degrade.Degradation, rng: np.random.Generator) -> torch.Tensor:
    return to_tensor(np.stack([degrade.apply(c, d, rng) for c in hr]))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / F.mse_loss(a.clamp(0, 1), b)))


def told(d: degrade.Degradation, n: int) -> torch.Tensor:
    return torch.tensor([degrade.conditions(d)] * n, dtype=torch.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", help="weights files or run folders, or 'general' (the bundled)")
    ap.add_argument("--dataset", default="mixed", help="prepared data set (its photos; the degradations are made here)")
    ap.add_argument("--crops", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--range", dest="range_dataset", help="fine-tune on this general data set's range instead of noise only")
    a = ap.parse_args()
    dataset = find_dataset(a.dataset)
    val_hr = crops(load_split(dataset, "val"), a.crops, 128, np.random.default_rng(5))
    hr = to_tensor(val_hr)
    models = [(w, pretrained.load(w) if w == "general" else pretrained.load_file(Path(w))) for w in a.weights]
    print(f"{len(val_hr)} validation crops of 128 px from {dataset.name}; PSNR dB (RGB)")
    print(f"{'model':24} {'case':10} {'input':>7} {'told':>7} {'zero':>7}  raw estimate (blur, scale, noise, JPEG)")
    for name, loaded in models:
        model = loaded.model.eval()
        for case, d in CASES.items():
            lq = degraded(val_hr, d, np.random.default_rng(1))
            with torch.no_grad():
                out, zero = model.net(lq, told(d, len(lq))), model.net(lq, torch.zeros(len(lq), 4))
                guess = model.estimate(lq, raw=True).mean(dim=0)
            print(f"{Path(name).name:24} {case:10} {psnr(lq, hr):7.2f} {psnr(out, hr):7.2f} {psnr(zero, hr):7.2f}  "
                  + ", ".join(f"{float(v):.3f}" for v in guess))
    if a.train_steps:
        name, loaded = models[0]
        net = loaded.model.net.requires_grad_(True).train()
        d = CASES["noise 5"]
        val_lq = degraded(val_hr, d, np.random.default_rng(1))
        train, rng = load_split(dataset, "train"), np.random.default_rng(0)
        sampler = None
        if a.range_dataset:
            general = find_dataset(a.range_dataset)
            try:
                degradations = general_degradations(general, read_manifest(general))
            except TrainError as e:
                raise SystemExit(str(e)) from None
            sampler = CropSampler(load_split(general, "train"), 64, 4, 0, degradations)
        opt = torch.optim.Adam(net.parameters(), lr=a.lr)
        torch.manual_seed(0)
        for step in range(1, a.train_steps + 1):
            if sampler is not None:
                b_lq, b_hr, b_cond = sampler.batch(step, 16)
                loss = F.l1_loss(net(b_lq, b_cond), b_hr)
            else:
                batch = crops(train, 16, 64, rng)
                loss = F.l1_loss(net(degraded(batch, d, rng), told(d, len(batch))), to_tensor(batch))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 50 == 0:
                with torch.no_grad():
                    out = net(val_lq, told(d, len(val_lq)))
                what = f"{a.range_dataset}'s range, all told" if sampler is not None else "noise-only"
                print(f"{Path(name).name}: {what}, step {step}: noise-5 validation crops told {psnr(out, hr):.2f} dB "
                      f"(input {psnr(val_lq, hr):.2f})")


if __name__ == "__main__":
    main()
