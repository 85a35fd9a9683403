"""HR folder -> degraded training pairs on disk + ``manifest.json``.

Layout of a prepared data set::

    <data dir>/datasets/<name>/
        manifest.json          recipe, sources with sha256, split, counts, skipped files
        train/hr/*.png  train/lq/*.png
        val/hr/*.png    val/lq/*.png

Re-running skips the sources whose pairs are already on disk, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from sharpkd import imagefile
from sharpkd.degrade import CANONICAL, DegradationRange, Recipe, degrade
from sharpkd.files import write_atomic

MIN_SIZE = 128  # the training patch: a smaller image cannot give a single crop
SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # scikit-image's colour photos
DIV2K_TRAIN, DIV2K_VALID = "DIV2K_train_HR", "DIV2K_valid_HR"


class PrepareError(Exception):
    """A problem with the request as a whole (not one file)."""


@dataclass(frozen=True)
class Source:
    """One HR image to prepare: a file, or a scikit-image sample photo by name."""

    name: str
    split: str
    path: Path | None = None
    sample: str | None = None
    part: str = ""  # the folder it came from: validation is reported per part


@dataclass
class PrepareResult:
    dataset_dir: Path
    written: int = 0
    existing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and imagefile.is_image_path(p))


def split_folder(folder: Path, val_count: int) -> list[Source]:
    """Images of ``folder`` sorted by name; the last ``val_count`` are the validation split."""
    files = image_files(folder)
    if not files:
        raise PrepareError(f"{folder}: no image files found")
    if val_count >= len(files):
        raise PrepareError(f"{folder}: {len(files)} images, not enough to hold out {val_count} for validation")
    cut = len(files) - val_count
    return [Source(p.stem, "train" if i < cut else "val", path=p, part=folder.name) for i, p in enumerate(files)]


# crops of one photo share a group: <source>_<photo>_<k> and wall_<photo>_r<i>c<j> (natural_sr_train's names)
_GROUP_PATTERNS = (re.compile(r"^(wall_.+)_r\d+c\d+$"), re.compile(r"^([^_]+_.+)_\d+$"))


def photo_group(stem: str) -> str:
    """The photo a file was cut from, by its name: ``deepin_aurora_2`` -> ``deepin_aurora``,
    ``wall_roman-colosseum_r0c3`` -> ``wall_roman-colosseum``; other names are their own group."""
    for pattern in _GROUP_PATTERNS:
        m = pattern.match(stem)
        if m:
            return m.group(1)
    return stem


def split_groups(folder: Path, every: int) -> list[Source]:
    """Images of ``folder``; every ``every``-th photo group (sorted by name, the first included) is
    validation. Held out by photo, not by file, so no crop of a validation photo is trained on."""
    files = image_files(folder)
    if not files:
        raise PrepareError(f"{folder}: no image files found")
    groups = sorted({photo_group(p.stem) for p in files})
    if len(groups) < 2:
        raise PrepareError(f"{folder}: one photo group only, nothing to hold out every {every}")
    held = set(groups[::every])
    return [Source(p.stem, "val" if photo_group(p.stem) in held else "train", path=p, part=folder.name) for p in files]


@dataclass(frozen=True)
class Holdout:
    """How one --images folder is split: the last ``count`` files, or every ``every``-th photo group."""

    count: int = 10
    every: int = 0

    @classmethod
    def parse(cls, text: str) -> "Holdout":
        kind, _, n = text.partition(":")
        if kind not in ("last", "groups") or not n.isdigit() or int(n) < 1:
            raise PrepareError(f"--val {text!r}: expected last:N (the last N files by name) or groups:K (every K-th photo group)")
        return cls(count=int(n)) if kind == "last" else cls(every=int(n))

    def sources(self, folder: Path) -> list[Source]:
        return split_groups(folder, self.every) if self.every else split_folder(folder, self.count)


def folder_sources(folders: list[Path], holdouts: list[Holdout]) -> list[Source]:
    """Sources of several folders into one data set (``holdouts``: one per folder); names must not clash."""
    sources = [s for folder, h in zip(folders, holdouts) for s in h.sources(Path(folder))]
    seen: dict[str, Path] = {}
    for s in sources:
        if s.name in seen:
            raise PrepareError(f"{s.path} and {seen[s.name]} share the name {s.name!r}; rename one of them")
        seen[s.name] = s.path
    return sources


def div2k_sources(root: Path, val_count: int) -> list[Source]:
    """DIV2K layout: ``root`` holds DIV2K_train_HR/ and/or DIV2K_valid_HR/, or is such a folder."""
    root = Path(root)
    if not root.is_dir():
        raise PrepareError(f"{root}: not a folder")
    train, valid = root / DIV2K_TRAIN, root / DIV2K_VALID
    if train.is_dir() and valid.is_dir():
        files = [(p, "train") for p in image_files(train)] + [(p, "val") for p in image_files(valid)]
        if not files:
            raise PrepareError(f"{root}: {DIV2K_TRAIN}/ and {DIV2K_VALID}/ hold no images")
        return [Source(p.stem, s, path=p) for p, s in files]
    folder = train if train.is_dir() else valid if valid.is_dir() else root
    if not image_files(folder):
        raise PrepareError(
            f"{root}: no DIV2K images found (expected {DIV2K_TRAIN}/ or {DIV2K_VALID}/ with PNG files, "
            "or a folder of images)"
        )
    return split_folder(folder, val_count)


def sample_sources(names: tuple[str, ...] = SAMPLE_PHOTOS) -> list[Source]:
    """scikit-image's sample photos; the last one is the validation split."""
    return [Source(n, "val" if i == len(names) - 1 else "train", sample=n) for i, n in enumerate(names)]


def load_rgb8(source: Source) -> tuple[np.ndarray, str]:
    """(HxWx3 uint8 pixels, sha256 of the source bytes)."""
    if source.sample is not None:
        import skimage.data

        pixels = np.ascontiguousarray(getattr(skimage.data, source.sample)())
        return pixels, hashlib.sha256(pixels.tobytes()).hexdigest()
    pic = imagefile.read(source.path)
    color = imagefile.to_dtype(pic.color, np.uint8)
    if pic.gray:
        color = np.repeat(color, 3, axis=2)
    return color, hashlib.sha256(source.path.read_bytes()).hexdigest()


def crops(h: int, w: int, size: int, step: int, align: int) -> list[tuple[int, int]]:
    """Top-left corners of ``size`` crops every ``step`` px (aligned to ``align``), edges included."""

    def starts(n: int) -> list[int]:
        last = (n - size) // align * align
        s = list(range(0, last + 1, step))
        if s[-1] != last:
            s.append(last)
        return s

    return [(y, x) for y in starts(h) for x in starts(w)]


def _save_png(array: np.ndarray, path: Path) -> None:
    write_atomic(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG", compress_level=1))


def prepare_one(source: Source, dataset_dir: Path, recipe: Recipe, subimage: int, step: int) -> dict:
    """Degrade one source and write its pair(s). Returns its manifest entry, or one with a ``skipped`` reason."""
    entry: dict = {"name": source.name, "split": source.split, "part": source.part}
    entry["source"] = str(source.path) if source.path else f"skimage.data.{source.sample}"
    try:
        hr, sha = load_rgb8(source)
    except imagefile.ImageFileError as e:
        return entry | {"skipped": e.reason}
    entry["sha256"] = sha
    if min(hr.shape[:2]) < MIN_SIZE:
        return entry | {"skipped": f"{hr.shape[1]}x{hr.shape[0]} is smaller than the {MIN_SIZE} px training patch"}
    hr, lq = degrade(hr, recipe)
    out = dataset_dir / source.split
    if subimage:
        size = min(subimage, *hr.shape[:2]) // recipe.scale * recipe.scale
        corners = crops(hr.shape[0], hr.shape[1], size, step, recipe.scale)
        names = [f"{source.name}_s{i:03d}" for i in range(len(corners))]
    else:
        size, corners, names = 0, [(0, 0)], [source.name]
    for (y, x), name in zip(corners, names):
        h = size or hr.shape[0]
        w = size or hr.shape[1]
        _save_png(lq[y : y + h, x : x + w], out / "lq" / f"{name}.png")
        _save_png(hr[y : y + h, x : x + w], out / "hr" / f"{name}.png")  # hr last: its presence marks done
    entry["files"] = names
    return entry


def _done(entry: dict | None, dataset_dir: Path) -> bool:
    if not entry or "files" not in entry:
        return False
    d = dataset_dir / entry["split"]
    return all((d / "hr" / f"{n}.png").exists() and (d / "lq" / f"{n}.png").exists() for n in entry["files"])


def prepare(
    sources: list[Source],
    dataset_dir: Path,
    recipe: Recipe = CANONICAL,
    subimage: int = 0,
    step: int = 240,
    workers: int = 1,
    on_progress: Callable[[dict], None] | None = None,
    train_degradations: DegradationRange | None = None,
    holdout: dict[str, str] | None = None,
) -> PrepareResult:
    """Write degraded pairs for ``sources`` under ``dataset_dir`` and (re)write its manifest.

    The stored LQ images always follow ``recipe``. ``train_degradations``, if given, is recorded in the
    manifest: training then degrades HR crops on the fly with degradations sampled from that range
    (and validates on the stored recipe pairs). ``holdout`` (folder name -> rule) is recorded in the manifest.
    """
    dataset_dir = Path(dataset_dir)
    manifest_path = dataset_dir / "manifest.json"
    previous: dict[str, dict] = {}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("recipe") != recipe.describe() or old.get("subimage") != subimage or old.get("step") != step:
            raise PrepareError(
                f"{dataset_dir} was prepared with different settings ({old.get('recipe')}, "
                f"subimage {old.get('subimage')}); choose another --name or delete that folder"
            )
        previous = {e["source"]: e for e in old["entries"]}
    for split in ("train", "val"):
        for kind in ("hr", "lq"):
            (dataset_dir / split / kind).mkdir(parents=True, exist_ok=True)

    result = PrepareResult(dataset_dir)
    entries: list[dict] = []
    todo: list[Source] = []
    for s in sources:
        key = str(s.path) if s.path else f"skimage.data.{s.sample}"
        if _done(previous.get(key), dataset_dir) and previous[key]["split"] == s.split:
            entries.append(previous[key])
            result.existing += 1
            if on_progress:
                on_progress(previous[key])
        else:
            todo.append(s)

    def collect(entry: dict) -> None:
        entries.append(entry)
        if "skipped" in entry:
            result.skipped.append((entry["source"], entry["skipped"]))
        else:
            result.written += 1
        if on_progress:
            on_progress(entry)

    args = (dataset_dir, recipe, subimage, step)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for entry in pool.map(prepare_one, todo, *[[a] * len(todo) for a in args], chunksize=8):
                collect(entry)
    else:
        for s in todo:
            collect(prepare_one(s, *args))

    entries.sort(key=lambda e: (e["split"], e["name"]))
    for split in ("train", "val"):
        result.counts[split] = sum(len(e.get("files", [])) for e in entries if e["split"] == split)
    manifest = {
        "name": dataset_dir.name,
        "recipe": recipe.describe(),
        "train_degradations": train_degradations.describe() if train_degradations else None,
        "seed": 0,
        "subimage": subimage,
        "step": step,
        "counts": result.counts,
        "split": {s: [e["name"] for e in entries if e["split"] == s and "files" in e] for s in ("train", "val")},
        "holdout": holdout or {},
        "entries": entries,
    }
    write_atomic(manifest_path, json.dumps(manifest, indent=2).encode())
    return result
