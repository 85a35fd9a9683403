"""``sharpkd distill``: train the compact student from the teacher (knowledge distillation).

The loss, per batch of degraded crops ``lq`` and their originals ``hr``:

    L1(student(lq), hr)
    + lambda_feat * sum_i MSE(adapter_i(student feature_i), teacher feature_j(i))
    + lambda_out  * L1(student(lq), teacher(lq))            (only when lambda_out > 0)

Both networks fold the image into the same 1/4-resolution grid, so their body features line up pixel
for pixel; student block ``i`` of ``n`` is paired with teacher block ``j(i)`` at the same relative depth
(the last with the last). Each adapter is a 1x1 conv from the student's width to the teacher's: it lets
the student hold the teacher's information in fewer channels, and it is dropped after training, so
the shipped student costs exactly what it cost before.

The teacher is frozen and runs in eval mode under ``no_grad``. Training itself is the shared loop of
:mod:`sharpkd.training` (resume, EMA, validation, checkpoints); ``--baseline`` trains the same student
with the same seed, steps and data but without the teacher (``train_teacher.train(arch="student")``),
into ``<run>/baseline``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from sharpkd import models, paths, pretrained
from sharpkd.files import write_atomic
from sharpkd.pairs import load_split, read_manifest, train_degradations
from sharpkd.training import RunSpec, TrainConfig, TrainError, fit, warm_start


@dataclass(frozen=True)
class DistillConfig:
    """Weights of the distillation terms. Feature MSE is on the teacher's feature scale."""

    lambda_feat: float = 1.0
    lambda_out: float = 0.0

    def as_loss(self) -> dict:
        return {"l1": 1.0, "feat_mse": self.lambda_feat, "out_l1": self.lambda_out}


def feature_pairs(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    """(student block, teacher block) at the same relative depth; the last block pairs with the last."""
    return [(i, round((i + 1) * n_teacher / n_student) - 1) for i in range(n_student)]


class Adapters(nn.Module):
    """1x1 convs mapping each paired student feature to its teacher feature's width (dropped after training)."""

    def __init__(self, student_channels: list[int], teacher_channels: list[int], pairs: list[tuple[int, int]]) -> None:
        super().__init__()
        self.pairs = pairs
        self.convs = nn.ModuleList(nn.Conv2d(student_channels[i], teacher_channels[j], 1) for i, j in pairs)

    def forward(self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        """Sum over pairs of the MSE between adapted student features and teacher features."""
        return sum(F.mse_loss(conv(student_feats[i]), teacher_feats[j]) for conv, (i, j) in zip(self.convs, self.pairs))


def kd_loss(student: nn.Module, teacher: nn.Module, adapters: Adapters, cfg: DistillConfig):
    def loss(lq: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            t_out, t_feats = teacher.forward_features(lq)
        out, feats = student.forward_features(lq)
        l1 = F.l1_loss(out, hr)
        feat = adapters(feats, t_feats)
        total = l1 + cfg.lambda_feat * feat
        parts = {"l1": float(l1.detach()), "feat_mse": float(feat.detach())}
        if cfg.lambda_out > 0:
            out_l1 = F.l1_loss(out, t_out)
            total = total + cfg.lambda_out * out_l1
            parts["out_l1"] = float(out_l1.detach())
        return total, parts

    return loss


def latest_teacher(root: Path | None = None) -> Path | None:
    """The run folder of the most recently saved teacher under the data dir's runs/, if any."""
    base = paths.runs_dir(root)
    found = []
    for model_file in base.glob("*/model.pt") if base.exists() else []:
        try:
            arch = json.loads((model_file.parent / "config.json").read_text())["spec"]["arch"]
        except (OSError, ValueError, KeyError):
            continue
        if arch == "teacher":
            found.append(model_file)
    return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def load_teacher(teacher: str | None, device: str) -> pretrained.Loaded:
    """``teacher``: a run folder or weights file, ``"bundled"`` (the bundled teacher), ``"bundled-general"``
    (the bundled general model, which teaches a smaller general student), ``"bundled-x4"`` (the bundled
    student, which teaches a smaller student: a teacher assistant, a step between sizes), or None for the
    latest trained teacher, else the bundled one."""
    if teacher is None:
        teacher = latest_teacher()
        if teacher is None:
            try:
                return pretrained.load("teacher", device=device)
            except pretrained.WeightsError:
                raise TrainError(
                    f"no teacher: none trained in {paths.runs_dir()} and none bundled with this installation; "
                    "run `sharpkd train-teacher` first (or give --teacher RUN_DIR)"
                ) from None
    if teacher == "bundled":
        return pretrained.load("teacher", device=device)
    if teacher == "bundled-general":
        return pretrained.load("general", device=device)
    if teacher == "bundled-x4":
        return pretrained.load("x4", device=device)
    return pretrained.load_file(Path(teacher), device)


def train(
    dataset_dir: Path,
    run_dir: Path,
    cfg: TrainConfig,
    teacher: pretrained.Loaded,
    kd: DistillConfig = DistillConfig(),
    student_config: dict | None = None,
    device: str = "cpu",
    on_step: Callable[[int, int, dict], None] | None = None,
    init: pretrained.Loaded | None = None,
    calibrate: bool = True,
    keep_estimator: bool = False,
) -> dict:
    """Distil ``teacher`` into a student on ``dataset_dir`` (or resume); returns the final validation.

    The student starts fresh, or from ``init`` (see :func:`training.warm_start`). ``calibrate``: a general
    student's blur estimate is calibrated after training (skip it to do it later). ``keep_estimator``: a
    general student's estimator (taken from ``init`` or the teacher) is not trained, and its calibration
    is kept: only the network learns.
    """
    from sharpkd import distributed

    _, device = distributed.setup(device)  # under torchrun: join the group, this rank's GPU
    manifest = read_manifest(dataset_dir)
    torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights (in every process)
    t_model = teacher.model
    if teacher.device != torch.device(device):  # a copy: the loaded model may be shared (cached)
        t_model = copy.deepcopy(t_model).to(device)
    t_model.eval()
    if teacher.arch == "general":
        return _train_general(
            dataset_dir, run_dir, cfg, teacher.source, t_model, kd, student_config, device, on_step, init, manifest, calibrate, keep_estimator
        )
    if keep_estimator:
        raise TrainError("--keep-estimator is for a general student (distilled from a general model)")
    student = models.build("student", student_config)
    taken = warm_start(student, init.model, init.source) if init is not None else None
    student = student.to(device)
    if t_model.config.unshuffle != student.config.unshuffle:
        raise TrainError(
            f"teacher folds by {t_model.config.unshuffle} and the student by {student.config.unshuffle}: "
            "their features do not line up"
        )
    pairs = feature_pairs(len(student.feature_channels), len(t_model.feature_channels))
    adapters = Adapters(student.feature_channels, t_model.feature_channels, pairs).to(device)
    spec = RunSpec(
        arch="student",
        model_config=student.config.to_dict(),
        dataset=str(dataset_dir),
        align=manifest["recipe"]["scale"],
        loss=kd.as_loss(),
        extra={
            "teacher": teacher.source, "teacher_config": t_model.config.to_dict(), "feature_pairs": pairs,
            "train_degradations": manifest.get("train_degradations"), "init": init.source if init else None,
            "init_taken": taken,
        },
    )
    train_pairs, val_pairs = load_split(dataset_dir, "train"), load_split(dataset_dir, "val")
    loss = kd_loss(student, t_model, adapters, kd)
    return fit(
        run_dir, spec, student, loss, train_pairs, val_pairs, cfg,
        extra=adapters, device=device, on_step=on_step, degradations=train_degradations(manifest),
    )


def _train_general(
    dataset_dir: Path, run_dir: Path, cfg: TrainConfig, source: str, t_model: nn.Module, kd: DistillConfig,
    student_config: dict | None, device: str, on_step, init: pretrained.Loaded | None, manifest: dict, calibrate: bool,
    keep_estimator: bool,
) -> dict:
    """A smaller general model from a larger one: the general model's own loss (L1 to HR, the estimator's
    quantile loss) plus ``lambda_out`` x L1 to the teacher's output under the same conditions. The
    student's estimator starts from ``init``'s, else from the teacher's; its body starts fresh (or from
    ``init`` when that has the same shape). The result is calibrated like ``train-teacher --arch general``,
    unless ``keep_estimator``: then the estimator is frozen as it started (no quantile loss, its blur
    calibration kept), so blind mode guesses exactly what the estimator it came from guesses."""
    from sharpkd import distributed
    from sharpkd.train_teacher import (
        ESTIMATOR_QUANTILE,
        calibrate_run,
        general_degradations,
        general_loss,
    )

    if kd.lambda_feat > 0 or kd.lambda_out <= 0:
        raise TrainError(
            f"{source}: a general model teaches through its output only: use --lambda-feat 0 and --lambda-out > 0 (e.g. 1)"
        )
    degradations = general_degradations(dataset_dir, manifest)
    student = models.build("general", student_config)
    taken = warm_start(student, init.model, init.source) if init else warm_start(student, t_model, source)
    student = student.to(device)
    if keep_estimator:
        student.estimator.requires_grad_(False)
    spec = RunSpec(
        arch="general",
        model_config=student.config.to_dict(),
        dataset=str(dataset_dir),
        align=manifest["recipe"]["scale"],
        loss={"l1": 1.0, "estimator_quantile": 0.0 if keep_estimator else ESTIMATOR_QUANTILE, "out_l1": kd.lambda_out},
        extra={
            "teacher": source, "teacher_config": t_model.config.to_dict(), "train_degradations": manifest.get("train_degradations"),
            "init": init.source if init else None, "init_taken": taken,
        } | ({"keep_estimator": True} if keep_estimator else {}),  # recorded as train-teacher records it
    )
    train_pairs, val_pairs = load_split(dataset_dir, "train"), load_split(dataset_dir, "val")
    loss = general_loss(student, estimator_weight=0.0 if keep_estimator else 1.0, teacher=t_model, lambda_out=kd.lambda_out)
    val = fit(run_dir, spec, student, loss, train_pairs, val_pairs, cfg, device=device, on_step=on_step, degradations=degradations)
    if calibrate and not keep_estimator and distributed.from_env().main:
        val = calibrate_run(run_dir, spec, train_pairs, val_pairs, device, val["step"])
    return val


def install(run_dir: Path, root: Path | None = None) -> Path:
    """Make a run's student the user's default for ``enhance`` (copied into the data dir, atomically)."""
    source = Path(run_dir) / "model.pt"
    loaded = pretrained.load_file(source)  # refuse anything that would not load later
    if loaded.arch == "teacher":
        raise TrainError(f"{source}: holds a teacher, not a student (too slow to be the default)")
    target = paths.installed_student(root)
    write_atomic(target, source.read_bytes())
    return target


def uninstall(root: Path | None = None) -> Path | None:
    """Undo :func:`install`: the installed student is renamed to a backup beside it (nothing is deleted);
    returns the backup's path, or None if no student was installed."""
    import time

    target = paths.installed_student(root)
    if not target.exists():
        return None
    backup = target.with_name(f"{target.stem}.removed-{time.strftime('%Y%m%d-%H%M%S')}{target.suffix}")
    target.rename(backup)
    return backup


def report_card(
    dataset_dir: Path, run_dir: Path, teacher: pretrained.Loaded, kd_val: dict, base_val: dict, cfg: TrainConfig, kd: DistillConfig,
    init: str | None = None,
) -> str:
    """Measure input / teacher / student+KD / student alone and write ``report.md`` + ``report.json``."""
    from sharpkd import report

    val_pairs = load_split(dataset_dir, "val")
    if not val_pairs:
        raise TrainError(f"{dataset_dir}: no validation pairs, so there is nothing to report on")
    image = report.speed_image(val_pairs)
    kd_model = pretrained.load_file(Path(run_dir)).model
    alone_model = pretrained.load_file(Path(run_dir) / "baseline").model
    kd_entry = report.measure("student + KD", kd_model, val_pairs, image, kd_val)
    alone_entry = report.measure("student alone", alone_model, val_pairs, image, base_val)
    teacher_entry = report.measure("teacher", teacher.model, val_pairs, image)
    entries = [report.input_entry(kd_val), teacher_entry, kd_entry, alone_entry]
    context = {
        "dataset": Path(dataset_dir).name, "val_images": len(val_pairs), "teacher": teacher.source,
        "steps": cfg.steps, "batch_size": cfg.batch_size, "patch": cfg.patch, "seed": cfg.seed, "lr": cfg.lr,
        "loss": kd.as_loss(), "speed_size": f"{image.shape[-1]}x{image.shape[-2]}", "init": init,
    }
    return report.write(entries, kd_entry, alone_entry, context, Path(run_dir))
