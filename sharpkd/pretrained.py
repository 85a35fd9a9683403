"""Specs of the bundled weights and the one safe place that loads any weights file.

A bundled model is a ``weights/<name>.pt`` file plus ``weights/<name>.json``: its spec (architecture,
config, sha256, what it is for, how it was trained, validation numbers). Loading checks the checksum and
uses ``torch.load(..., weights_only=True)``: no pickled code is ever run.

Loading returns a :class:`Loaded` descriptor: the model plus what callers need to run it (its context
for tiling, its alignment, where it came from).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sharpkd import paths
from sharpkd.files import torch_load

if TYPE_CHECKING:  # torch is imported where a model is loaded, not when the CLI starts
    import torch
    from torch import nn

WEIGHTS_DIR = Path(__file__).parent / "weights"
# general: the default; fast: general cut to 32 channels (1.8x faster network, a little less gain); x4: the
# canonical-degradation student
BUNDLED = ("general", "fast", "x4", "teacher")
ALIASES = {"student": "x4"}  # the x4 student's name before the general model shipped


class WeightsError(Exception):
    """Weights that cannot be used, with the reason and what to do."""


@dataclass(frozen=True)
class WeightSpec:
    name: str
    file: str
    arch: str
    config: dict
    sha256: str
    purpose: str
    trained: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    # measured tile margin (px) that keeps tiled output within 1 level of the whole image
    # (benchmarks/margin.py); None: the model's full receptive field, exact to float precision
    context: int | None = None
    context_note: str = ""


@dataclass(frozen=True)
class PhotoRun:
    """What the tiles of one photo go through: ``fn`` (Bx3xhxw -> same), a description for ``-v``,
    and ``changes``: False when ``fn`` is the identity (a photo the general model finds clean)."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    described: str
    changes: bool = True
    conditions: tuple[float, ...] | None = None
    context: int | None = None  # px of context its tiles need, where more than the model's


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


@dataclass(frozen=True)
class Loaded:
    """A ready model and everything running it needs: where it came from, the context (px on each side)
    a tile needs so that tiled output equals whole-image output, the alignment of its input size, and
    whether it is conditioned (the general model: estimated once per photo, see :meth:`for_photo`).

    The model is shared (bundled models are cached): callers must not move or modify it."""

    model: nn.Module
    name: str
    arch: str
    source: str
    context: int
    align: int
    conditioned: bool

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def for_photo(self, read: Callable[[int, int, int, int], torch.Tensor], height: int, width: int) -> PhotoRun:
        """The per-photo callable. The general model estimates the photo's degradation here, once, so
        every tile gets the same conditions; a photo it estimates as clean (every condition below
        ``CLEAN_LEVEL``) is passed through unchanged: the network alone would still touch a few pixels
        (measured on the sweep's JPEG case: up to 12 levels on 0.1 % of the pixels).

        Its cleanup stage (where it has one) measures noise and JPEG blocking on every photo, since the
        estimator sees neither: on a photo the estimator finds sharp, what it finds is cleaned up; on a
        soft one, the photo is cleaned up first and then restored as estimated (the estimate is taken on
        the photo as it came: the cleaned photo reads softer than it is); on a photo only a little soft
        (raw blur guess above ``cleanup.max_raw_blur``, calibrated blur and scale 0), noise only is
        cleaned up (a blocking grid of the photo's own, blurred, still measures as JPEG; see
        :func:`artifacts_to_clean`)."""
        if not self.conditioned:
            return PhotoRun(self.model, self.name)
        from sharpkd.models.general import CLEAN_LEVEL

        model = self.model
        raw, cond = model.guess_photo(read, height, width)
        values = tuple(float(v) for v in cond[0])
        soft = max(values[:2]) >= CLEAN_LEVEL
        notes = []
        if model.cleanup is not None:
            decision = model.cleanup.decide(read, height, width, CLEAN_LEVEL)
            values = (*values[:2], *artifacts_to_clean(model, raw, cond, decision.noise, decision.jpeg))
            notes.append(decision.note())
            if little_soft(model, raw, cond):
                notes.append(f"raw blur {float(raw[0, 0]):.3f}: a little soft, no JPEG cleanup")
        if round(values[1], 2) > round(float(raw[0, 1]), 2):  # the whole-photo guess raised the scale
            notes.append(f"scale from the whole photo's guess; the crops' {float(raw[0, 1]):.2f}")
        note = f" ({'; '.join(notes)})" if notes else ""
        described = f"{self.name}, estimated " + " ".join(f"{k} {v:.2f}" for k, v in zip(CONDITIONS, values)) + note
        if model.cleanup is not None and max(values[2:]) >= CLEAN_LEVEL:
            cleanup, (noise, jpeg) = model.cleanup, values[2:]
            if not soft:
                return PhotoRun(lambda t: cleanup(t, noise, jpeg), f"{described}: noise/JPEG cleanup", True, values)
            return PhotoRun(
                lambda t: model(cleanup(t, noise, jpeg), cond.expand(len(t), -1)),
                f"{described}: noise/JPEG cleanup, then restored", True, values, context=2 * self.context,
            )
        if max(values) < CLEAN_LEVEL:
            return PhotoRun(_identity, f"{described}: clean, left unchanged", False, values)
        return PhotoRun(lambda t: model(t, cond.expand(len(t), -1)), described, True, values)


def artifacts_to_clean(model: nn.Module, raw: torch.Tensor, cond: torch.Tensor, noise: float, jpeg: float) -> tuple[float, float]:
    """The (noise, JPEG) conditions a general model's cleanup stage is told on a photo its estimator
    guessed ``raw`` (1x4; ``cond``: the same calibrated), given what the stage measured (``noise``,
    ``jpeg``, after its texture check): both, except that a photo a little soft (calibrated blur and
    scale below ``CLEAN_LEVEL``, raw blur guess above ``cleanup.max_raw_blur``) gets no JPEG cleanup.

    Why: the estimator never learned noise or JPEG, so they must be measured on soft photos too, where
    sharpening leaves them in or makes them worse (measured: scikit-image's ``retina`` with JPEG q40
    guessed upscaled, -1.28 dB; noise sigma 5 after blur 1.0 x2, 104 training photos: +1.29 dB without
    cleanup, +2.08 cleaned first). On a photo only a little soft, a blocking grid of the photo's own
    still measures after the blur, and removing it takes detail too (:class:`Cleanup` ``max_raw_blur``)."""
    return noise, 0.0 if little_soft(model, raw, cond) else jpeg


def little_soft(model: nn.Module, raw: torch.Tensor, cond: torch.Tensor) -> bool:
    """Whether a general model (with a cleanup stage) finds a photo only a little soft: its calibrated blur
    and scale (``cond``, 1x4) below ``CLEAN_LEVEL``, its raw blur guess (``raw``) above ``cleanup.max_raw_blur``."""
    from sharpkd.models.general import CLEAN_LEVEL

    return float(cond[0, :2].max()) < CLEAN_LEVEL and float(raw[0, 0]) > float(model.cleanup.max_raw_blur)


CONDITIONS = ("blur", "scale", "noise", "jpeg")  # the order of degrade.CONDITIONS (not imported: it pulls SciPy)


def describe(model: nn.Module, name: str, source: str = "") -> Loaded:
    """The descriptor of a model (a bundled one, a weights file, or one being trained)."""
    from sharpkd import models

    arch = models.arch_of(model)
    return Loaded(model, name, arch, source or name, model.context, model.config.unshuffle, arch == "general")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def bundled_spec(name: str) -> WeightSpec:
    name = ALIASES.get(name, name)
    path = WEIGHTS_DIR / f"{name}.json"
    if not path.exists():
        raise WeightsError(f"no bundled weights named {name!r} in this installation")
    return WeightSpec(**json.loads(path.read_text()))


def _torch_load(path: Path) -> dict:
    try:
        return torch_load(path)
    except FileNotFoundError:
        raise WeightsError(f"{path}: file not found") from None
    except (ValueError, OSError) as e:
        raise WeightsError(str(e)) from None


def _build(path: Path, arch: str, config: dict, state_dict: dict) -> nn.Module:
    import torch

    from sharpkd import models

    try:
        model = models.build(arch, config)
        model.load_state_dict(state_dict)
    except (TypeError, ValueError, RuntimeError) as e:
        raise WeightsError(f"{path}: weights do not fit architecture {arch} {config}: {e}") from None
    # channels-last: the CPU convolutions run about 1.35x faster this way (measured, x4 on 1024x768)
    return model.eval().requires_grad_(False).to(memory_format=torch.channels_last)


def load_file(path: Path, device: str = "cpu") -> Loaded:
    """Load a weights file made by training (``model.pt``), a resumable ``last.pt``, or a run directory."""
    path = Path(path)
    if path.is_dir():
        if not (path / "model.pt").exists():
            raise WeightsError(f"{path}: no model.pt in this run directory (has training reached its first validation?)")
        path = path / "model.pt"
    data = _torch_load(path)
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: not a sharpkd weights file")
    # a run's files are model.pt / last.pt: the run folder's name says which run it is
    name = path.parent.name if path.stem in ("model", "last") and path.parent.name else path.stem
    if "state_dict" in data and "arch" in data:
        model = _build(path, data["arch"], data["config"], data["state_dict"])
        return describe(model.to(device), name, str(path))
    if "ema" in data and "spec" in data:  # a resumable checkpoint: use its EMA weights
        spec = json.loads(data["spec"])
        model = _build(path, spec["arch"], spec["model_config"], data["ema"])
        return describe(model.to(device), name, str(path))
    raise WeightsError(f"{path}: not a sharpkd weights file (no architecture recorded)")


def write_bundle(
    source: Path, name: str, purpose: str, trained: dict, validation: dict, out_dir: Path = WEIGHTS_DIR, context: int | None = None,
    context_note: str = "",
) -> WeightSpec:
    """Turn a training run's weights into bundled ``<name>.pt`` + ``<name>.json`` (maintainers' step).

    The ``.pt`` holds only what loading needs (architecture, config, tensors); the spec adds what it is
    for, how it was trained, its validation numbers and the file's sha256, which loading checks.
    """
    loaded = load_file(source)
    model = loaded.model
    path = Path(out_dir) / f"{name}.pt"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    import torch

    torch.save({"arch": loaded.arch, "config": model.config.to_dict(), "state_dict": state}, path)
    spec = WeightSpec(name, path.name, loaded.arch, model.config.to_dict(), sha256(path), purpose, trained, validation, context, context_note)
    (Path(out_dir) / f"{name}.json").write_text(json.dumps(asdict(spec), indent=2) + "\n")
    return spec


@lru_cache(maxsize=4)
def _load_bundled(name: str, device: str) -> Loaded:
    name = ALIASES.get(name, name)
    spec = bundled_spec(name)
    path = WEIGHTS_DIR / spec.file
    if not path.exists():
        raise WeightsError(f"{path}: bundled weights file is missing; reinstall sharpkd")
    digest = sha256(path)
    if digest != spec.sha256:
        raise WeightsError(f"{path}: checksum mismatch (expected {spec.sha256[:12]}…, got {digest[:12]}…); reinstall sharpkd")
    data = _torch_load(path)
    if data.get("arch") != spec.arch or data.get("config") != spec.config:
        raise WeightsError(f"{path}: file does not match its spec {name}.json")
    model = _build(path, spec.arch, spec.config, data["state_dict"])
    loaded = describe(model.to(device), name, f"bundled {spec.file}")
    return replace(loaded, context=spec.context) if spec.context else loaded


def load(name: str | None = None, weights: Path | None = None, device: str = "cpu") -> Loaded:
    """The model to run: ``weights`` if given, else bundled ``name``; with neither, the user's installed
    student (``sharpkd distill --install``) if there is one, else the bundled general model."""
    if weights is not None:
        return load_file(weights, device)
    if name is None:
        installed = paths.installed_student()
        if installed.exists():
            return replace(load_file(installed, device), name="student (installed)")
        name = "general"
    return _load_bundled(name, device)


def load_name_or_file(what: str, device: str = "cpu") -> Loaded:
    """A bundled model by name (or old alias), else a weights file or run folder: what the maintainers'
    tools take as a model argument."""
    return load(what, device=device) if what in BUNDLED or what in ALIASES else load_file(Path(what), device)


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu. Asking for cuda without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise WeightsError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return device
