"""Prepared pairs in RAM (uint8) and a sampler of random aligned crops with the 8 flips/rotations."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sharpkd import degrade
from sharpkd.degrade import DegradationRange

CONTEXT_MARGIN = 16  # pixels of real context degraded around an on-the-fly patch


class DatasetError(Exception):
    pass


@dataclass(frozen=True)
class Pair:
    name: str
    hr: np.ndarray  # HxWx3 uint8
    lq: np.ndarray  # same size: the degraded copy


def read_manifest(dataset_dir: Path) -> dict:
    path = Path(dataset_dir) / "manifest.json"
    if not path.exists():
        raise DatasetError(f"{dataset_dir}: no prepared data set here (run `sharpkd prepare` first)")
    return json.loads(path.read_text())


def train_degradations(manifest: dict) -> DegradationRange | None:
    """The degradation range a data set was prepared for (``prepare --degradations general``), if any."""
    described = manifest.get("train_degradations")
    if not described:
        return None
    described = {"artifacts_only_share": 0.0, **described}  # recorded before that share existed: none
    return DegradationRange(**{k: tuple(v) if isinstance(v, list) else v for k, v in described.items()})


def load_split(dataset_dir: Path, split: str) -> list[Pair]:
    """All pairs of one split ("train" or "val") of a prepared data set."""
    dataset_dir = Path(dataset_dir)
    manifest = read_manifest(dataset_dir)
    pairs = []
    for entry in manifest["entries"]:
        if entry["split"] != split or "files" not in entry:
            continue
        for name in entry["files"]:
            d = dataset_dir / split
            try:
                hr = np.asarray(Image.open(d / "hr" / f"{name}.png").convert("RGB"))
                lq = np.asarray(Image.open(d / "lq" / f"{name}.png").convert("RGB"))
            except OSError as e:
                raise DatasetError(f"{d}: cannot read pair {name}: {e} (re-run `sharpkd prepare`)") from None
            pairs.append(Pair(name, hr, lq))
    return pairs


def parts(dataset_dir: Path) -> dict[str, str]:
    """Pair name -> the source folder ("part") it came from, for data sets prepared from several folders
    (validation is reported per part); older data sets have one part, named after the data set."""
    manifest = read_manifest(dataset_dir)
    return {name: e.get("part") or manifest["name"] for e in manifest["entries"] for name in e.get("files", [])}


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """NxHxWx3 (or HxWx3) uint8 -> Nx3xHxW float in 0..1."""
    if images.ndim == 3:
        images = images[None]
    # copy only where torch needs one (read-only or strided arrays); no np.array(copy=...), whose meaning
    # changed in NumPy 2 (copy=False raises there when a copy is needed)
    images = np.ascontiguousarray(images)
    if not images.flags.writeable:
        images = images.copy()
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


class CropSampler:
    """Random ``patch`` crops, corners on the ``align`` grid (the degradation's scale), picked with
    probability proportional to image area, each with one of the 8 flips/rotations.

    Crop ``i`` of step ``s`` is drawn from its own random stream, seeded by ``(seed, s, i)``: a batch
    is the same whether one process draws all of it or several processes (distributed ranks, loader
    workers) each draw a slice, and a resumed run continues exactly where it stopped. The sampler itself
    holds no state to save."""

    def __init__(self, pairs: list[Pair], patch: int, align: int, seed: int, degradations: DegradationRange | None = None) -> None:
        self.pairs = [p for p in pairs if min(p.hr.shape[:2]) >= patch]
        self.degradations = degradations
        if not self.pairs:
            raise DatasetError(f"no training image is at least {patch} px on both sides")
        areas = np.array([p.hr.shape[0] * p.hr.shape[1] for p in self.pairs], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.patch, self.align, self.seed = patch, align, seed

    def batch(self, step: int, n: int, first: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Crops ``first`` .. ``first + n - 1`` of step ``step``: (lq, hr, cond), nx3xPxP floats in 0..1
        and nx4 degradation conditions (see :func:`degrade.conditions`; zeros for stored pairs, whose
        degradation is the data set's recipe)."""
        p, a = self.patch, self.align
        lq = np.empty((n, p, p, 3), np.uint8)
        hr = np.empty((n, p, p, 3), np.uint8)
        cond = np.zeros((n, len(degrade.CONDITIONS)), np.float32)
        for i in range(n):
            rng = np.random.default_rng([self.seed, step, first + i])
            pair = self.pairs[rng.choice(len(self.pairs), p=self.weights)]
            h, w = pair.hr.shape[:2]
            y = int(rng.integers(0, (h - p) // a + 1)) * a
            x = int(rng.integers(0, (w - p) // a + 1)) * a
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            if self.degradations is None:
                sources = ((pair.lq[y : y + p, x : x + p], lq), (pair.hr[y : y + p, x : x + p], hr))
            else:
                d = self.degradations.sample(rng)
                cond[i] = degrade.conditions(d)
                sources = ((self._degraded_patch(pair.hr, y, x, d, rng), lq), (pair.hr[y : y + p, x : x + p], hr))
            for src, dst in sources:
                c = np.rot90(src, k)
                dst[i] = c[:, ::-1] if flip else c
        return to_tensor(lq), to_tensor(hr), torch.from_numpy(cond)

    def _degraded_patch(self, hr: np.ndarray, y: int, x: int, d: degrade.Degradation, rng: np.random.Generator) -> np.ndarray:
        """The patch at (y, x), degraded on the fly by ``d``.

        It is degraded together with a margin of context (where the image has one), so blur and resizing
        see real pixels at the patch edges, as they would in a whole photo.
        """
        p, m = self.patch, CONTEXT_MARGIN
        h, w = hr.shape[:2]
        y0, x0 = max(0, y - m), max(0, x - m)
        region = hr[y0 : min(h, y + p + m), x0 : min(w, x + p + m)]
        out = degrade.apply(region, d, rng)
        return out[y - y0 : y - y0 + p, x - x0 : x - x0 + p]


class CropStream(torch.utils.data.IterableDataset):
    """Batches for a ``DataLoader`` with worker processes (GPU training, where making crops on one core
    would starve the device): from step ``start`` on, crops ``first`` .. ``first + n - 1`` of each step.
    Worker ``w`` of ``W`` makes the batches of steps ``start + w``, ``start + w + W``, ...; the loader
    hands them out in that order, so the stream equals :meth:`CropSampler.batch` step after step."""

    def __init__(self, pairs: list[Pair], patch: int, align: int, seed: int, start: int, n: int, first: int = 0,
                 degradations: DegradationRange | None = None) -> None:
        self.args = (pairs, patch, align, seed, degradations)
        self.start, self.n, self.first = start, n, first

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if info is not None:
            # Ctrl-C in a terminal, or a scheduler's SIGTERM, reaches the whole process group: only the
            # main process should act on it (save, then shut the workers down). A worker killed first
            # made the main process print a DataLoader traceback after "checkpoint saved".
            import signal

            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
        torch.set_num_threads(1)
        sampler = CropSampler(*self.args)
        step = self.start + worker
        while True:
            yield sampler.batch(step, self.n, self.first)
            step += workers


def find_dataset(name: str | None, root: Path | None = None) -> Path:
    """A prepared data set by folder path or by name under the data dir; with no name, the newest one."""
    from sharpkd import paths

    if name is not None and (Path(name) / "manifest.json").exists():
        return Path(name)
    base = paths.datasets_dir(root)
    if name is not None:
        if (base / name / "manifest.json").exists():
            return base / name
        raise DatasetError(f"no prepared data set {name!r} in {base} (run `sharpkd prepare --name {name} ...` first)")
    found = sorted(base.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime) if base.exists() else []
    if not found:
        raise DatasetError(f"no data set prepared in {base}: run `sharpkd prepare --sample` (or --div2k PATH, --images DIR)")
    return found[-1].parent
