"""Batches of files: which input goes where (:func:`plan_batch`), then read -> restore -> write each one
(:func:`run_batch`), reporting every event through a callback so the CLI can draw progress and the
tests can listen. The pixels themselves go through :func:`sharpkd.inference.enhance_picture`.

Nothing the user had is lost: an output never overwrites an input, an existing output is skipped
unless asked, and every write is atomic.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from sharpkd import imagefile
from sharpkd.files import check_writable
from sharpkd.pretrained import Loaded

SUFFIX_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}
# image formats people keep in photo folders that this tool cannot read: say so instead of "not an image"
UNSUPPORTED = {".heic": "HEIC", ".heif": "HEIF", ".dng": "camera raw", ".cr2": "camera raw", ".cr3": "camera raw",
               ".nef": "camera raw", ".arw": "camera raw", ".orf": "camera raw", ".rw2": "camera raw", ".raf": "camera raw",
               ".raw": "camera raw", ".psd": "Photoshop", ".svg": "vector"}


class PlanError(Exception):
    """A request that cannot be carried out at all (e.g. -o names a file but several inputs are given)."""


@dataclass(frozen=True)
class Options:
    tile: int = 128
    strength: float = 1.0
    upscale: int = 1
    format: str | None = None
    quality: int = 95
    overwrite: bool = False
    recursive: bool = False
    background: tuple[int, int, int] = (255, 255, 255)  # for alpha written to JPEG
    max_pixels: int = imagefile.DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    key: str = ""  # the source's path relative to its input root: what decides its shard


@dataclass(frozen=True)
class Shard:
    """Worker ``index`` (0-based) of ``count``: it does the files whose key hashes to its index."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index


def shard_of(key: str, count: int) -> int:
    """A file's shard: a stable hash of its path relative to the input root (not of the listing order,
    so adding files moves no other file, and every worker computes the same answer)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:16], 16) % count


def parse_shard(text: str, shards: int | None, env: dict[str, str]) -> Shard:
    """``I/N`` (0 <= I < N) or ``auto``: from a Slurm job array (SLURM_ARRAY_TASK_ID with
    SLURM_ARRAY_TASK_COUNT, or SLURM_ARRAY_TASK_MIN/MAX) or a Kubernetes indexed Job
    (JOB_COMPLETION_INDEX, with the count from ``shards``). Raises PlanError saying what is missing."""
    if text != "auto":
        i, sep, n = text.partition("/")
        if not sep or not i.isdigit() or not n.isdigit() or not 0 <= int(i) < int(n):
            raise PlanError(f"--shard {text!r}: expected I/N with 0 <= I < N (e.g. 0/4), or auto")
        return Shard(int(i), int(n))
    if "SLURM_ARRAY_TASK_ID" in env:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        if "SLURM_ARRAY_TASK_MIN" in env and "SLURM_ARRAY_TASK_MAX" in env:
            lo, hi = int(env["SLURM_ARRAY_TASK_MIN"]), int(env["SLURM_ARRAY_TASK_MAX"])
            count = shards or int(env.get("SLURM_ARRAY_TASK_COUNT", hi - lo + 1))
            index = task - lo
        elif "SLURM_ARRAY_TASK_COUNT" in env or shards:
            count, index = shards or int(env["SLURM_ARRAY_TASK_COUNT"]), task
        else:
            raise PlanError("--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT or _MIN/_MAX; give --shards N")
        if not 0 <= index < count:
            raise PlanError(f"--shard auto: Slurm array task {task} is outside the {count} shards (use --array=0-{count - 1})")
        return Shard(index, count)
    if "JOB_COMPLETION_INDEX" in env:
        if not shards:
            raise PlanError("--shard auto: JOB_COMPLETION_INDEX is set (Kubernetes indexed Job); give the Job's completions as --shards N")
        index = int(env["JOB_COMPLETION_INDEX"])
        if not 0 <= index < shards:
            raise PlanError(f"--shard auto: JOB_COMPLETION_INDEX {index} is outside --shards {shards}")
        return Shard(index, shards)
    raise PlanError("--shard auto: neither SLURM_ARRAY_TASK_ID (Slurm job array) nor JOB_COMPLETION_INDEX (Kubernetes indexed Job) "
                    "is set; give --shard I/N")


def select_shard(plan: "Plan", shard: Shard) -> "Plan":
    """The part of ``plan`` this shard does (refused inputs are reported by every shard)."""
    kept = [j for j in plan.jobs if shard.holds(j.key)]
    return replace(plan, jobs=kept, elsewhere=plan.elsewhere + len(plan.jobs) - len(kept))


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)  # files met in folder walks that are not taken
    refused: list[tuple[Path, str]] = field(default_factory=list)  # inputs that cannot be done at all
    left_in_subfolders: int = 0  # image files in sub-folders not walked (no --recursive)
    elsewhere: int = 0  # images planned for the other shards
    empty_inputs: list[Path] = field(default_factory=list)  # folders with no image file at all

    def why_nothing(self) -> list[str]:
        """Plain reasons why this plan has no job (for a run that would otherwise print only zeros)."""
        reasons = []
        if self.left_in_subfolders:
            reasons.append(f"{self.left_in_subfolders} image(s) in sub-folders were not looked at: add -r (--recursive)")
        kinds = sorted({r for _, r in self.ignored})
        for kind in kinds:
            n = sum(1 for _, r in self.ignored if r == kind)
            reasons.append(f"{n} file(s) ignored: {kind}")
        for folder in self.empty_inputs:
            if not self.left_in_subfolders and not self.ignored:
                reasons.append(f"{folder}: empty folder")
        return reasons


@dataclass
class Summary:
    done: int = 0  # restored and written
    unchanged: int = 0  # left unchanged (nothing found to restore, or --strength 0): written as a copy
    skipped: int = 0  # output existed already
    failed: list[tuple[str, str]] = field(default_factory=list)
    megapixels: float = 0.0  # computed output pixels (not the unchanged copies)
    seconds: float = 0.0
    model: str = ""
    shard: str = ""

    @property
    def mp_per_s(self) -> float | None:
        return self.megapixels / self.seconds if self.seconds > 0 and self.megapixels > 0 else None

    def as_dict(self) -> dict:
        rate = self.mp_per_s
        return {
            "done": self.done, "unchanged": self.unchanged, "skipped": self.skipped, "failed": len(self.failed),
            "failures": [{"path": p, "reason": r} for p, r in self.failed],
            "megapixels": round(self.megapixels, 3), "seconds": round(self.seconds, 3),
            "mp_per_s": round(rate, 3) if rate else None, "model": self.model, "shard": self.shard or None,
        }


def output_suffix(source: Path, fmt: str | None) -> str:
    """Same format as the input (keeping its spelling of the suffix) unless ``fmt``; unknown formats -> PNG."""
    if fmt is not None:
        fmt = imagefile.normalize_format(fmt)
        if SUFFIX_FORMATS.get(source.suffix.lower()) == fmt:
            return source.suffix
        return imagefile.FORMATS[fmt]
    return source.suffix if source.suffix.lower() in SUFFIX_FORMATS else ".png"


def is_file_output(output: Path) -> bool:
    """``-o`` names an output file (``result.jpg``) rather than a folder."""
    return output.suffix.lower() in SUFFIX_FORMATS and not output.is_dir()


def _why_ignored(path: Path) -> str:
    kind = UNSUPPORTED.get(path.suffix.lower())
    if kind:
        return f"{kind} files ({path.suffix.lower()}) cannot be read: convert them to JPEG, PNG or TIFF first"
    return "not an image file (by its name)"


def plan_batch(inputs: list[Path], output: Path, options: Options) -> Plan:
    """Decide the output path of every input image. Folders are walked (``recursive``: sub-folders too,
    mirrored under the output folder); files already under the output folder are never inputs.

    ``output`` is a folder, or (with exactly one input file) a file whose suffix chooses the format.
    Raises PlanError for requests that cannot work as a whole."""
    output = Path(output)
    if is_file_output(output):
        if len(inputs) != 1 or Path(inputs[0]).is_dir():
            raise PlanError(f"-o {output} names a file, which takes exactly one input file; give a folder for several")
        source = Path(inputs[0])
        plan = Plan()
        if not source.exists():
            plan.refused.append((source, "no such file or folder"))
        elif output.resolve() == source.resolve():
            plan.refused.append((source, f"output {output} would overwrite the input"))
        else:
            plan.jobs.append(Job(source, output, source.name))
        return plan
    if output.exists() and not output.is_dir():
        raise PlanError(f"{output}: exists and is not a folder")
    plan = Plan()
    out_dir = output.resolve()
    sources: list[tuple[Path, Path]] = []  # (file, path relative to the output folder)
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            if item.resolve() == out_dir:
                raise PlanError(f"the output folder is the input folder {item}: choose another -o, so outputs never mix with the photos")
            found = 0
            for p in sorted(item.rglob("*")):
                if not p.is_file() or any(part.startswith(".") for part in p.relative_to(item).parts):
                    continue
                if out_dir in p.resolve().parents:
                    continue
                nested = p.parent != item
                if nested and not options.recursive:
                    plan.left_in_subfolders += imagefile.is_image_path(p)
                    continue
                found += 1
                if imagefile.is_image_path(p):
                    sources.append((p, p.relative_to(item)))
                else:
                    plan.ignored.append((p, _why_ignored(p)))
            if not found:
                plan.empty_inputs.append(item)
        elif item.exists():
            if imagefile.is_image_path(item) or item.suffix.lower() not in UNSUPPORTED:
                sources.append((item, Path(item.name)))
            else:
                plan.refused.append((item, _why_ignored(item)))
        else:
            plan.refused.append((item, "no such file or folder"))
    inputs_resolved = {s.resolve() for s, _ in sources}
    taken: dict[Path, Path] = {}
    for source, rel in sources:
        target = out_dir / rel.parent / (rel.stem + output_suffix(source, options.format))
        if target.resolve() in inputs_resolved:
            plan.refused.append((source, f"output {target} would overwrite an input file"))
        elif target in taken:
            plan.refused.append((source, f"output {target} is already the output of {taken[target]}"))
        else:
            taken[target] = source
            plan.jobs.append(Job(source, target, rel.as_posix()))
    return plan


def to_do(plan: Plan, overwrite: bool) -> list[Job]:
    """The jobs that will be computed: those whose output does not exist yet, or all with ``overwrite``."""
    return [j for j in plan.jobs if overwrite or not j.target.exists()]


def check_output(plan: Plan) -> str | None:
    """Why the outputs of ``plan`` cannot be written (checked once, before any photo is computed)."""
    for folder in sorted({j.target.parent for j in plan.jobs}):
        reason = check_writable(folder)
        if reason:
            return f"cannot write into the output folder {folder}: {reason}"
    return None


def target_format(job: Job, options: Options) -> str:
    return imagefile.normalize_format(options.format or SUFFIX_FORMATS.get(job.target.suffix.lower(), "png"))


def flatten_alpha(pic: imagefile.Picture, background: tuple[int, int, int]) -> imagefile.Picture:
    """The picture composited over ``background`` (for formats without alpha), so pixels hidden under
    transparency never show."""
    top = 65535.0 if pic.color.dtype == np.uint16 else 255.0
    a = pic.alpha.astype(np.float32)[..., None] / (65535.0 if pic.alpha.dtype == np.uint16 else 255.0)
    bg = np.array(background[:1] if pic.gray else background, np.float32) * (top / 255.0)
    out = pic.color.astype(np.float32) * a + bg * (1.0 - a)
    return replace(pic, color=np.clip(np.round(out), 0, top).astype(pic.color.dtype), alpha=None)


@dataclass(frozen=True)
class Done:
    """One written output: its megapixels, whether its pixels were computed (not copied), what ran, notes."""

    megapixels: float
    computed: bool
    described: str
    notes: tuple[str, ...] = ()
    looks_sharp: bool = False


def enhance_file(
    loaded: Loaded, job: Job, options: Options, on_tile: Callable[[int, int], None] | None = None,
    sharp_check: Callable[[imagefile.Picture], bool] | None = None,
    pic: imagefile.Picture | None = None,
) -> Done:
    """Read (unless ``pic`` is the file's picture, already decoded), restore, write one file. Raises
    ImageFileError (and torch's RuntimeError). ``sharp_check``: asked of the decoded picture (see
    :func:`run_batch`)."""
    # torch is imported when a photo is restored, not to plan a batch
    from sharpkd.inference import enhance_picture

    pic = pic or imagefile.read(job.source, options.max_pixels)
    looks_sharp = sharp_check(pic) if sharp_check is not None else False
    result = enhance_picture(loaded, pic, options.tile, options.strength, options.upscale, on_tile)
    out = result.picture
    fmt = target_format(job, options)
    notes = []
    if out.alpha is not None and fmt == "jpeg":
        out = flatten_alpha(out, options.background)
        notes.append("alpha composited on the background (JPEG has no transparency)")
    same_kind = SUFFIX_FORMATS.get(job.source.suffix.lower()) == fmt == pic.format and not pic.reoriented
    if not result.changed and same_kind:
        # nothing changed (a photo the general model found clean, or --strength 0): the original file,
        # byte for byte, rather than a re-encoded copy that would lose JPEG quality. (Not for a file
        # whose EXIF orientation was applied: those are written upright with orientation 1.)
        imagefile.copy(job.source, job.target)
    else:
        imagefile.write(out, job.target, fmt, options.quality)
    return Done(out.megapixels, result.changed, result.described, tuple(notes), looks_sharp)


def failure_reason(e: Exception) -> str:
    """What to tell the user about a file that failed."""
    if isinstance(e, imagefile.ImageFileError):
        return e.reason
    text = str(e) or type(e).__name__
    if "out of memory" in text.lower() or isinstance(e, MemoryError):
        return "out of memory: try a smaller --tile"
    return text.splitlines()[0]


def sharp_checker(loaded: Loaded) -> Callable[[imagefile.Picture], bool] | None:
    """For the specialist x4: a function telling whether a photo looks sharp to the general model (so
    that one warning can say x4 over-sharpens it); None for the models that judge photos themselves."""
    if loaded.conditioned or loaded.arch != "student":
        return None
    from sharpkd import pretrained
    from sharpkd.inference import photo_run

    general = pretrained.load("general", device=str(loaded.device))

    def looks_sharp(pic: imagefile.Picture) -> bool:
        return not photo_run(general, pic.color).changes

    return looks_sharp


def run_batch(
    loaded: Loaded,
    plan: Plan,
    options: Options,
    on_event: Callable[[str, Job, dict], None] | None = None,
    sharp_check: Callable[[imagefile.Picture], bool] | None = None,
    reader: imagefile.ReadAhead | None = None,
) -> Summary:
    """Enhance every job of ``plan``. Events: "skip", "start", "tile" (done, total), "done"
    (megapixels, computed, model, notes), "fail" (reason), "warn" (message).

    ``sharp_check(picture) -> bool``: whether a photo looks sharp to the general model; asked until
    the specialist ``x4`` has changed such a photo, to warn (once) that it over-sharpens sharp photos.
    ``reader``: decodes the next photo while this one is restored (one is made if not given; the CLI
    passes its own, already decoding the first photo while the model loads)."""
    emit = on_event or (lambda *_: None)
    summary = Summary(model=loaded.name)
    summary.failed.extend((str(p), r) for p, r in plan.refused)
    own_reader = reader is None
    reader = reader or imagefile.ReadAhead(options.max_pixels)
    after = {a.source: b for a, b in itertools.pairwise(to_do(plan, options.overwrite))}
    warned = False
    t0 = time.perf_counter()
    try:
        for job in plan.jobs:
            if job.target.exists() and not options.overwrite:
                summary.skipped += 1
                emit("skip", job, {})
                continue
            emit("start", job, {})
            try:
                # decoded ahead (or now); the next photo decodes while this one is restored
                pic = reader.read(job.source, after[job.source].source if job.source in after else None)
                done = enhance_file(loaded, job, options, lambda d, n: emit("tile", job, {"done": d, "total": n}),
                                    None if warned else sharp_check, pic)
                if not warned and done.computed and done.looks_sharp:
                    warned = True
                    emit("warn", job, {"message": (
                        f"{job.source.name} looks sharp already, and --model {loaded.name} is made for photos blurred and "
                        "downscaled 4x: on sharp photos it adds halos and ringing; the default model leaves them alone")})
            except (imagefile.ImageFileError, ValueError, MemoryError, RuntimeError) as e:
                reason = failure_reason(e)
                summary.failed.append((str(job.source), reason))
                emit("fail", job, {"reason": reason})
                continue
            if done.computed:
                summary.done += 1
                summary.megapixels += done.megapixels
            else:
                summary.unchanged += 1
            emit("done", job, {"megapixels": done.megapixels, "computed": done.computed, "model": done.described, "notes": done.notes})
    finally:
        if own_reader:
            reader.close()
    summary.seconds = time.perf_counter() - t0
    return summary
