"""Retrain only the general model's estimator, with a linear output (maintainers' tool).

    python tools/train_estimator.py WEIGHTS|general --dataset mixed-general2 --out general-linear.pt [--steps 1500]
        [--batch-size 16] [--lr 1e-3] [--seed 0]
    python tools/calibrate_general.py general-linear.pt --dataset mixed --out general-linear-cal.pt --blur-scale 0.6

Why: the bundled estimator ends in a sigmoid whose logits for noise and JPEG sank to -1000 and below in
training, where the sigmoid passes no gradient, so it guesses exactly 0 for them on every photo and can
never learn otherwise (docs/model-card.md). This tool keeps the network of WEIGHTS (a general model) as
it is, and trains its estimator, the convolutions from WEIGHTS and a fresh linear head whose output is
clamped to 0..1 (``GeneralConfig.linear_estimate``), with the same quantile loss as training (q = 0.3)
on crops degraded on the fly by the data set's range (a data set prepared with ``--degradations
general``). It costs the estimator's work only (no network forward), about 0.4 s a step on 2 cores.
The result is uncalibrated: calibrate it with ``tools/calibrate_general.py``, then check it with
``benchmarks/sweep.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import torch

from sharpkd import models, pretrained
from sharpkd.pairs import CropSampler, find_dataset, load_split, read_manifest
from sharpkd.train_teacher import (
    ESTIMATOR_QUANTILE,
    general_degradations,
    quantile_loss,
)
from sharpkd.training import TrainError, save_atomic, warm_start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    source = pretrained.load_file(a.weights) if a.weights.exists() else pretrained.load(str(a.weights))
    if source.arch != "general":
        raise SystemExit(f"{a.weights}: holds a {source.arch}, not a general model")
    dataset = find_dataset(a.dataset)
    try:
        degradations = general_degradations(dataset, read_manifest(dataset))
    except TrainError as e:
        raise SystemExit(str(e)) from None
    torch.manual_seed(a.seed)
    # the estimator's features change: a whole-photo scale head fitted on the old ones is dropped (refit: tools/fit_scale.py)
    config = dataclasses.replace(source.model.config, linear_estimate=True, pooled_scale=False)
    model = models.build("general", config.to_dict())
    taken = warm_start(model, source.model, source.source)  # the body and the estimator's convolutions
    model.estimator.fresh_head()  # (also when WEIGHTS' head is linear already)
    print(f"from {source.source}: {taken}, the estimator's head afresh")
    estimator = model.estimator.train()
    opt = torch.optim.Adam(estimator.parameters(), lr=a.lr)
    sampler = CropSampler(load_split(dataset, "train"), a.patch, 4, a.seed, degradations)
    t0 = time.perf_counter()
    for step in range(a.steps):
        for group in opt.param_groups:
            group["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        lq, _, cond = sampler.batch(step, a.batch_size)
        loss = quantile_loss(estimator.for_loss(lq), cond, ESTIMATOR_QUANTILE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == a.steps - 1:
            print(json.dumps({"step": step, "loss": round(float(loss.detach()), 5), "sec": round(time.perf_counter() - t0, 1)}), flush=True)
    info = {"estimator_retrained": {"from": source.source, "dataset": str(dataset), "steps": a.steps, "batch_size": a.batch_size,
                                    "lr": a.lr, "seed": a.seed, "quantile": ESTIMATOR_QUANTILE}}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_atomic({"arch": "general", "config": config.to_dict(), "state_dict": state, "info": json.dumps(info)}, a.out)
    print(f"wrote {a.out} (uncalibrated: run tools/calibrate_general.py on it)")


if __name__ == "__main__":
    main()
