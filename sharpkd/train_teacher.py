"""``sharpkd train-teacher``: train a model with plain L1 against HR on a prepared data set.

The teacher is the default; ``arch="student"`` trains the student alone the same way (the baseline that
distillation is measured against, and how the first bundled student was made). ``arch="general"``
trains the general student on a data set prepared with ``--degradations general`` (:func:`general_loss`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

from sharpkd import models
from sharpkd.degrade import DegradationRange
from sharpkd.pairs import load_split, read_manifest, train_degradations
from sharpkd.pretrained import Loaded
from sharpkd.training import RunSpec, TrainConfig, TrainError, fit, warm_start


def l1_loss(model: torch.nn.Module):
    def loss(lq: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        value = F.l1_loss(model(lq), hr)
        return value, {"l1": float(value.detach())}

    return loss


ESTIMATOR_QUANTILE = 0.3  # the estimator aims below the truth: doing too little costs less than too much
# --balance-loss: each crop's L1 divided by (its input's L1 error + this floor): a noisy or JPEG crop, whose
# input is only a little off, then counts as much as a heavily blurred one; clean crops (error 0) get 1/floor.
BALANCE_FLOOR = 0.01


def quantile_loss(guess: torch.Tensor, truth: torch.Tensor, q: float) -> torch.Tensor:
    """Pinball loss (x2, so q = 0.5 is L1): a guess above the truth costs (1 - q) per unit, below it q.

    Why: an over-estimated blur over-sharpens (halos; measured -3.7 to -5.5 dB on smooth portraits),
    an under-estimated one merely gains less. With q < 0.5 the estimator learns a low quantile."""
    err = truth - guess
    return 2 * torch.maximum(q * err, (q - 1) * err).mean()


def general_loss(
    model: torch.nn.Module,
    estimator_weight: float = 1.0,
    quantile: float = ESTIMATOR_QUANTILE,
    teacher: torch.nn.Module | None = None,
    lambda_out: float = 0.0,
    balance: bool = False,
    told_share: float = 0.5,
    measured: Callable[[torch.Tensor], torch.Tensor] | None = None,
):
    """L1 to HR of the restoration, plus the estimator's quantile loss to the true conditions.

    Half of each batch (``told_share``) is restored with the true conditions (so a stated degradation is
    obeyed), half with the estimator's guess, detached (so the network also learns to live with the
    estimator's errors, as it must in blind mode). ``told_share`` 1: every crop told the truth (the cleanup
    network, whose conditions come from a measurement, not from the estimator). ``measured``: a batch of
    inputs -> the conditions to tell instead of the truth (the cleanup stage's measurement through its
    knots), so the network learns what to do with what it will be told. With a ``teacher`` (a larger general model, frozen) and
    ``lambda_out`` > 0, an L1 to the teacher's output under the same conditions is added: output
    distillation between general models (``sharpkd distill --teacher`` a general model). ``balance``:
    each crop's L1 to HR weighted by 1 / (its input's L1 error + :data:`BALANCE_FLOOR`), the weights
    normalised to mean 1 over the batch (so the loss keeps its scale).
    """

    def loss(lq: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        if measured is not None:
            cond = measured(lq)
        guess = model.estimator.for_loss(lq)
        est = quantile_loss(guess, cond, quantile)
        told = torch.rand(len(lq), 1, device=lq.device) < told_share
        used = torch.where(told, cond, guess.detach().clamp(0, 1))
        out = model(lq, used)
        if balance:
            weights = 1.0 / ((lq - hr).abs().mean(dim=(1, 2, 3)) + BALANCE_FLOOR)
            l1 = ((out - hr).abs().mean(dim=(1, 2, 3)) * (weights / weights.mean())).mean()
        else:
            l1 = F.l1_loss(out, hr)
        total = l1 + estimator_weight * est
        parts = {"l1": float(l1.detach()), "est_l1": float(est.detach())}
        if teacher is not None and lambda_out > 0:
            with torch.no_grad():
                target = teacher(lq, used)
            out_l1 = F.l1_loss(out, target)
            total = total + lambda_out * out_l1
            parts["out_l1"] = float(out_l1.detach())
        return total, parts

    return loss


def _measured_conditions(cleanup: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Bx3xhxw crops -> Bx4 conditions (0, 0, noise, JPEG) as ``cleanup`` measures them."""
    from sharpkd.models.cleanup import measure_tensor

    def conditions(lq: torch.Tensor) -> torch.Tensor:
        rows = [(0.0, 0.0, *cleanup.conditions(measure_tensor(x[None].detach().cpu()))) for x in lq]
        return torch.tensor(rows, dtype=lq.dtype, device=lq.device)

    return conditions


def general_degradations(dataset_dir: Path, manifest: dict) -> DegradationRange:
    """The degradation range a general model trains on; TrainError for a data set prepared without one."""
    degradations = train_degradations(manifest)
    if degradations is None:
        raise TrainError(
            f"{dataset_dir}: the general model needs a data set prepared with --degradations general "
            "(e.g. `sharpkd prepare --images DIR --name NAME-general --degradations general`)"
        )
    return degradations


def train(
    dataset_dir: Path,
    run_dir: Path,
    cfg: TrainConfig,
    arch: str = "teacher",
    model_config: dict | None = None,
    device: str = "cpu",
    on_step: Callable[[int, int, dict], None] | None = None,
    init: Loaded | None = None,
    calibrate: bool = True,
    balance: bool = False,
    keep_estimator: bool = False,
    told_only: bool = False,
    measured_by: torch.nn.Module | None = None,
) -> dict:
    """Train (or resume) ``arch`` on ``dataset_dir``; returns the final validation numbers.

    ``init``: weights to start a new run from (see :func:`training.warm_start`). ``calibrate``: for the
    general model, calibrate its blur estimate after training (``calibrate_run``; skip it to do it later).
    ``balance``: the general model's L1 weighted per crop (see :func:`general_loss`). ``keep_estimator``:
    the general model's estimator (from ``init``) is not trained and keeps its calibration; only the
    network learns (the baseline of ``distill --keep-estimator``). ``told_only``: every crop told its true
    conditions, the estimator kept (implies ``keep_estimator``): how the cleanup network is trained.
    ``measured_by``: a cleanup stage (:class:`sharpkd.models.cleanup.Cleanup`) whose measurement of each
    crop, through its knots, is told instead of the truth (implies ``told_only``).
    """
    from sharpkd import distributed

    ranks, device = distributed.setup(device)  # under torchrun: join the group, this rank's GPU
    manifest = read_manifest(dataset_dir)
    degradations = general_degradations(dataset_dir, manifest) if arch == "general" else train_degradations(manifest)
    torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights (in every process)
    model = models.build(arch, model_config)
    taken = warm_start(model, init.model, init.source) if init is not None else None
    model = model.to(device)
    told_only = told_only or measured_by is not None
    keep_estimator = keep_estimator or told_only
    if keep_estimator:
        if arch != "general":
            raise TrainError("--keep-estimator is for a general model (--arch general)")
        model.estimator.requires_grad_(False)
    quantile = 0.0 if keep_estimator else ESTIMATOR_QUANTILE
    spec = RunSpec(
        arch=arch,
        model_config=model.config.to_dict(),
        dataset=str(dataset_dir),
        align=manifest["recipe"]["scale"],
        loss=({"l1": 1.0, "estimator_quantile": quantile} | ({"balance_floor": BALANCE_FLOOR} if balance else {}))
        if arch == "general" else {"l1": 1.0},
        extra={"train_degradations": manifest.get("train_degradations"), "init": init.source if init else None, "init_taken": taken}
        | ({"keep_estimator": True} if keep_estimator else {}) | ({"told_only": True} if told_only else {})
        | ({"told_measured": {"knots": measured_by.knots.tolist()}} if measured_by is not None else {}),
    )
    train_pairs, val_pairs = load_split(dataset_dir, "train"), load_split(dataset_dir, "val")
    val = fit(
        run_dir, spec, model, general_loss(
            model, 0.0 if keep_estimator else 1.0, balance=balance, told_share=1.0 if told_only else 0.5,
            measured=_measured_conditions(measured_by) if measured_by is not None else None,
        ) if arch == "general" else l1_loss(model), train_pairs, val_pairs, cfg,
        device=device, on_step=on_step, degradations=degradations,
    )
    if arch == "general" and calibrate and not keep_estimator and ranks.main:
        val = calibrate_run(run_dir, spec, train_pairs, val_pairs, device, val["step"])
    return val


def calibrate_run(run_dir: Path, spec: RunSpec, train_pairs: list, val_pairs: list, device: str, step: int) -> dict:
    """Calibrate the blur estimate of a trained general model on (every other) training photo, then
    validate and save it again as the run's ``model.pt``; see :func:`sharpkd.models.general.calibrate`."""
    import json

    from sharpkd.models.general import calibrate
    from sharpkd.pretrained import load_file
    from sharpkd.training import evaluate, save_atomic, weights_file

    model = load_file(run_dir / "model.pt", device).model
    knots = calibrate(model, [p.hr for p in train_pairs[::2]], device)
    val = {"step": step, **evaluate(model, val_pairs, crop=spec.align), "calibrated": True} if val_pairs else {"step": step}
    info = {"step": step, "val": val, "dataset": spec.dataset, "loss": spec.loss, "blur_knots": knots}
    save_atomic(weights_file(spec, {k: v.cpu() for k, v in model.state_dict().items()}, info), run_dir / "model.pt")
    with open(run_dir / "log.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "val": val, "blur_knots": knots}) + "\n")
    return val

