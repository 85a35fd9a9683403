"""The training loop shared by ``train-teacher`` and ``distill``: it trains any model with any loss.

Reads top to bottom: resume or start -> for each step: sample a batch, one optimiser step, EMA update,
log -> every ``val_every`` steps: validate the EMA weights, save -> at the end: save the final weights.

A run directory holds:
    config.json   the resolved configuration (architecture, model config, training config, data set)
    last.pt       the resumable checkpoint (model, EMA, extra modules, optimiser, RNG states), atomic
    model.pt      the EMA weights alone: what ``sharpkd enhance --weights RUN`` loads
    log.jsonl     one JSON line per log interval and per validation
    curves.png    loss and validation curves
The loop keeps no module-level state; one call of :func:`train_step` is one optimiser step, so a
distributed launcher can wrap it later.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from sharpkd import metrics
from sharpkd.degrade import DegradationRange
from sharpkd.files import torch_load, write_atomic
from sharpkd.models.general import General
from sharpkd.pairs import CropSampler, CropStream, Pair

# loss(lq, hr, cond) -> (loss tensor, {part name: float}); it closes over the model(s) it trains.
# cond: the batch's degradation conditions (see degrade.conditions), used by the general model only.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


class TrainError(Exception):
    """A problem the user can fix (wrong run directory, corrupt checkpoint...)."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20000
    batch_size: int = 16
    patch: int = 128
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup: int = 200
    ema: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 25
    val_every: int = 1000
    ckpt_every: int = 200
    workers: int = 0  # crop-making processes; 0 = in the training process (bit-exact resume)


@dataclass
class RunSpec:
    """What a run trains: stored in config.json and checked on resume."""

    arch: str
    model_config: dict
    dataset: str
    align: int
    loss: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def identity(self) -> dict:
        return {"arch": self.arch, "model_config": self.model_config, "loss": self.loss}


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def ema_decay(step: int, cfg: TrainConfig) -> float:
    """EMA decay after ``step``: 0 (a plain copy) during warm-up, then (1 + n) / (10 + n) capped at
    ``cfg.ema``, n steps after warm-up. Without the ramp a short run's EMA would still be dominated by
    its first, poor weights (seen here: +0.84 dB for the EMA against +1.24 dB for the raw weights at
    step 500 of a teacher run)."""
    if step < cfg.warmup:
        return 0.0
    n = step - cfg.warmup
    return min(cfg.ema, (1 + n) / (10 + n))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Average the parameters; copy the buffers (running statistics, calibration knots), which are
    not trained by gradients, so averaging them would only lag."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def evaluate(model: nn.Module, pairs: list[Pair], crop: int, tile: int = 0) -> dict:
    """Mean PSNR-Y / SSIM-Y of the model's output and of the degraded input against HR (project
    convention). The model runs as ``sharpkd enhance`` runs it (:func:`sharpkd.inference.enhance_pixels`)."""
    from sharpkd.inference import enhance_pixels
    from sharpkd.pretrained import describe

    was_training = model.training
    model.eval()
    loaded = describe(model, "evaluated")
    conv = metrics.Convention(crop=crop)
    rows = []
    for p in pairs:
        out8, _ = enhance_pixels(loaded, p.lq, tile)
        rows.append((*metrics.psnr_ssim(out8, p.hr, conv), *metrics.psnr_ssim(p.lq, p.hr, conv)))
    model.train(was_training)
    m = np.mean(np.array(rows), axis=0)
    return {"psnr_y": m[0], "ssim_y": m[1], "psnr_in": m[2], "ssim_in": m[3], "gain": m[0] - m[2], "images": len(pairs)}


def save_atomic(obj: dict, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def weights_file(spec: RunSpec, state_dict: dict, info: dict) -> dict:
    """The contents of a loadable weights file (``model.pt``): tensors plus JSON-able metadata."""
    return {"arch": spec.arch, "config": spec.model_config, "state_dict": state_dict, "info": json.dumps(info)}


def resume_step(run_dir: Path) -> int | None:
    """The step a run folder's checkpoint would resume at, or None if there is none to resume."""
    last = Path(run_dir) / "last.pt"
    return int(load_checkpoint(last)["step"]) if last.exists() else None


def load_checkpoint(path: Path) -> dict:
    try:
        return torch_load(path)
    except (ValueError, OSError) as e:
        raise TrainError(f"{e}; corrupt or unreadable checkpoint: delete it to start over") from None


def warm_start(model: nn.Module, source: nn.Module, name: str) -> str:
    """Start ``model`` from the weights of ``source`` (same architecture and config), e.g. to continue a
    model trained in an earlier session whose checkpoint is gone. A resumed run ignores this.

    General models may differ: the body is taken when its shape (channels, blocks) is the same, also
    when its ReLUs leak differently (``negative_slope``: a leak lets units the source left dead learn), the
    estimator when it has the same width, and of an estimator with the other kind of output
    (``linear_estimate``) only the convolutions (the head starts at zero); a whole-photo scale head
    (``pooled_scale``) only where both have one. Returns what was taken
    ("all", or e.g. "body + estimator features"), which the run records."""
    if type(model) is type(source) and model.config == source.config:
        model.load_state_dict(source.state_dict())
        return "all"
    if (
        isinstance(model, General)
        and isinstance(source, General)
        and model.config.estimator_channels == source.config.estimator_channels
    ):
        taken = []
        if replace(model.net.config, negative_slope=source.net.config.negative_slope) == source.net.config:
            model.net.load_state_dict(source.net.state_dict())
            leaky = model.net.config.negative_slope != source.net.config.negative_slope
            taken.append(f"body (ReLU slope {source.net.config.negative_slope:g} -> {model.net.config.negative_slope:g})" if leaky else "body")
        if model.config.linear_estimate == source.config.linear_estimate:
            state = source.estimator.state_dict()
            # a whole-photo scale head (pooled_scale) is fitted after training, on the final features
            # (tools/fit_scale.py): taken only where both have one
            heads = model.estimator.scale_head is not None, source.estimator.scale_head is not None
            if heads != (True, True):
                state = {k: v for k, v in state.items() if not k.startswith("scale_head.")}
            model.estimator.load_state_dict(state, strict=heads != (True, False))  # only a head the source lacks stays unset
            taken.append("estimator" if heads[1] == heads[0] else "estimator without its scale head")
        else:
            model.estimator.features.load_state_dict(source.estimator.features.state_dict())
            model.estimator.fresh_head()
            taken.append("estimator features")
        return " + ".join(taken)
    raise TrainError(f"{name}: --init weights are a {type(source).__name__} {source.config}, not a {type(model).__name__} {model.config}")


class _Step(nn.Module):
    """The model (and extra trained modules) with the loss as its forward: what DistributedDataParallel
    wraps, so every parameter the loss reaches, by any path (``forward_features``, the estimator), has
    its gradient averaged over the ranks."""

    def __init__(self, model: nn.Module, extra: nn.Module | None, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.extra, self.loss_fn = model, extra, loss_fn

    def forward(self, lq: torch.Tensor, hr: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_fn(lq, hr, cond)


def train_step(
    step_module: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...], lr: float, clip: float
) -> dict:
    """One optimiser step on ``batch`` = (lq, hr, cond); returns the logged loss parts."""
    step_module.train()
    for g in opt.param_groups:
        g["lr"] = lr
    loss, parts = step_module(*batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in opt.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    return {"loss": float(loss.detach()), **parts}


class _StopRequest:
    """Under torchrun: Ctrl-C / SIGTERM set a flag instead of raising, so that every rank stops at the
    same step (the flag is shared at each step) and rank 0 saves one checkpoint."""

    def __init__(self) -> None:
        import signal

        self.asked = False
        self.previous = {sig: signal.signal(sig, self._ask) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _ask(self, signum, frame) -> None:
        self.asked = True

    def restore(self) -> None:
        import signal

        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def fit(
    run_dir: Path,
    spec: RunSpec,
    model: nn.Module,
    loss_fn: LossFn,
    train_pairs: list[Pair],
    val_pairs: list[Pair],
    cfg: TrainConfig,
    extra: nn.Module | None = None,
    device: str = "cpu",
    on_step: Callable[[int, int, dict], None] | None = None,
    degradations: DegradationRange | None = None,
) -> dict:
    """Train ``model`` (and ``extra``, e.g. distillation adapters) until ``cfg.steps``; resumable.

    ``degradations``: degrade each training crop on the fly by a sampled degradation (the stored LQ
    images are then unused for training); None trains on the prepared pairs as they are.
    Returns the last validation result. Raises KeyboardInterrupt after saving a checkpoint on Ctrl-C.

    Under torchrun (see :mod:`sharpkd.distributed`) the model runs in DistributedDataParallel: each of
    the ``W`` ranks draws its slice of every global batch of ``cfg.batch_size`` crops (the same crops one
    process would draw), rank 0 alone writes files and validates while the others wait, and the
    checkpoint holds nothing per rank, so a run can resume with another number of ranks.
    """
    from sharpkd import distributed

    ranks = distributed.from_env()
    if cfg.batch_size % ranks.world:
        raise TrainError(f"--batch-size {cfg.batch_size} does not split evenly over {ranks.world} processes")
    per_rank = cfg.batch_size // ranks.world
    run_dir = Path(run_dir)
    if ranks.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    torch.manual_seed(cfg.seed)
    ema = copy.deepcopy(model).requires_grad_(False)
    params = list(model.parameters()) + (list(extra.parameters()) if extra is not None else [])
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
    sampler = CropSampler(train_pairs, cfg.patch, spec.align, cfg.seed, degradations)
    step, best = 0, {}

    last = run_dir / "last.pt"
    if last.exists():
        ck = load_checkpoint(last)
        stored = json.loads(ck["spec"])
        if stored != spec.identity():
            raise TrainError(
                f"{run_dir} holds a run of a different model ({stored['arch']} {stored['model_config']}, loss "
                f"{stored['loss']}); use another --run directory or delete that one"
            )
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        if extra is not None:
            extra.load_state_dict(ck["extra"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        if ck.get("cuda_rng") and torch.cuda.is_available() and len(ck["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        step, best = ck["step"], json.loads(ck["val"])
    if ranks.main:
        config = {"spec": asdict(spec), "train": asdict(cfg), "device": device, "torch": torch.__version__, "processes": ranks.world}
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))

    step_module: nn.Module = _Step(model, extra, loss_fn)
    if ranks.active:
        # unused parameters: the adapters when the feature loss is off
        step_module = nn.parallel.DistributedDataParallel(step_module, find_unused_parameters=extra is not None)

    def checkpoint() -> None:
        if not ranks.main:
            return
        save_atomic(
            {
                "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                "extra": extra.state_dict() if extra is not None else {}, "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "spec": json.dumps(spec.identity()), "val": json.dumps(best),
            },
            last,
        )

    def validate_and_save() -> None:
        nonlocal best
        if ranks.main:
            best = {"step": step, **evaluate(ema, val_pairs, crop=spec.align)} if val_pairs else {"step": step}
            info = {"step": step, "val": best, "dataset": spec.dataset, "loss": spec.loss}
            save_atomic(weights_file(spec, ema.state_dict(), info), run_dir / "model.pt")
            with open(run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps({"step": step, "val": best}) + "\n")
            from sharpkd.figures import plot_curves

            plot_curves(run_dir / "log.jsonl", run_dir / "curves.png")
        else:
            best = {"step": step}
        distributed.barrier()  # the other ranks wait for rank 0's validation and files

    batches = None
    if cfg.workers > 0:
        stream = CropStream(train_pairs, cfg.patch, spec.align, cfg.seed, step, per_rank, ranks.rank * per_rank, degradations)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=cfg.workers, pin_memory=device != "cpu", prefetch_factor=4)
        batches = iter(loader)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels once

    stop = _StopRequest() if ranks.active else None
    log_file = open(run_dir / "log.jsonl", "a") if ranks.main else None
    acc: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        while step < cfg.steps:
            batch = next(batches) if batches is not None else sampler.batch(step, per_rank, ranks.rank * per_rank)
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
            parts = train_step(step_module, opt, batch, lr_at(step, cfg), cfg.grad_clip)
            if stop is not None:  # the loss over the whole global batch, and whether any rank was asked to stop
                values, asked = distributed.mean_and_stop(list(parts.values()), stop.asked, device)
                parts = dict(zip(parts, values))
                if asked:
                    raise KeyboardInterrupt
            ema_update(ema, model, ema_decay(step, cfg))
            step += 1
            for k, v in parts.items():
                acc[k] = acc.get(k, 0.0) + v
            if log_file and (step % cfg.log_every == 0 or step == cfg.steps):
                n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
                row = {"step": step, "lr": lr_at(step - 1, cfg), "sec": round(time.perf_counter() - t0, 2)}
                log_file.write(json.dumps(row | {k: v / n for k, v in acc.items()}) + "\n")
                log_file.flush()
            if step % cfg.log_every == 0 or step == cfg.steps:
                acc = {}
            if on_step:
                on_step(step, cfg.steps, parts)
            if step % cfg.ckpt_every == 0:
                checkpoint()
            if step % cfg.val_every == 0 and step < cfg.steps:
                validate_and_save()
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        if stop is not None:
            distributed.barrier()
        raise
    finally:
        if log_file:
            log_file.close()
        if stop is not None:
            stop.restore()
    if not (run_dir / "model.pt").exists() or best.get("step") != step:
        validate_and_save()
        checkpoint()
    if ranks.active:
        synced = distributed.in_sync(model, device)
        if ranks.main:
            with open(run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps({"step": step, "processes": ranks.world, "weights_in_sync": synced}) + "\n")
        if not synced:
            raise TrainError(f"the {ranks.world} processes ended with different weights: a bug, please report it")
    return best
