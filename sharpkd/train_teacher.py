"""``sharpkd train-teacher``: train a model with plain L1 against HR on a prepared data set.

The teacher is the default; ``arch="student"`` trains the student alone the same way (the baseline that
distillation is measured against, and how the first bundled student was made).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch.nn import functional as F

from sharpkd import models
from sharpkd.pairs import load_split, read_manifest, train_degradations
from sharpkd.pretrained import Loaded
from sharpkd.training import RunSpec, TrainConfig, fit, warm_start


def l1_loss(model: torch.nn.Module):
    def loss(lq: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        value = F.l1_loss(model(lq), hr)
        return value, {"l1": float(value.detach())}

    return loss


def train(
    dataset_dir: Path,
    run_dir: Path,
    cfg: TrainConfig,
    arch: str = "teacher",
    model_config: dict | None = None,
    device: str = "cpu",
    on_step: Callable[[int, int, dict], None] | None = None,
    init: Loaded | None = None,
) -> dict:
    """Train (or resume) ``arch`` on ``dataset_dir``; returns the final validation numbers.

    ``init``: weights to start a new run from (see :func:`training.warm_start`).
    """
    manifest = read_manifest(dataset_dir)
    model = models.build(arch, model_config)
    if init is not None:
        warm_start(model, init.model, init.source)
    model = model.to(device)
    spec = RunSpec(
        arch=arch,
        model_config=model.config.to_dict(),
        dataset=str(dataset_dir),
        align=manifest["recipe"]["scale"],
        loss={"l1": 1.0},
        extra={"train_degradations": manifest.get("train_degradations"), "init": init.source if init else None},
    )
    train_pairs, val_pairs = load_split(dataset_dir, "train"), load_split(dataset_dir, "val")
    return fit(
        run_dir, spec, model, l1_loss(model), train_pairs, val_pairs, cfg,
        device=device, on_step=on_step, degradations=train_degradations(manifest),
    )
