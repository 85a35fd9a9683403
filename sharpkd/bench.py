"""Speed and memory of ``sharpkd enhance`` as a user runs it, and of each stage (``sharpkd bench``,
``benchmarks/speed.py``).

Whole process: ``python -m sharpkd enhance FILE -o OUT`` in a fresh process, timed from start to exit,
with its peak resident memory (``/usr/bin/time``-style, from ``wait4``; with ``--jobs``, the peak of the sum
over the process and its workers, sampled every 50 ms from /proc); optionally beside one competing
CPU-bound process (a busy loop, as a browser or a build would be). Output MP/s = output megapixels /
wall seconds. Stages, in this process: import torch (a fresh interpreter), decode, the general model's
estimate, the network over the tiles (with the pixel conversions), encode.

The test photos are mosaics of scikit-image's sample photos, of the requested size, degraded by the
canonical recipe (blur 1.0, x4 down and up): soft, as the photos people
sharpen are, so that every model computes them (a photo the general model finds sharp is only copied).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def test_photo(megapixels: float) -> np.ndarray:
    """A soft RGB mosaic of about ``megapixels`` (4:3)."""
    import skimage.data

    h = int(round((megapixels * 1e6 * 3 / 4) ** 0.5)) // 4 * 4
    w = int(round(h * 4 / 3)) // 4 * 4
    tiles = []
    from sharpkd.degrade import degrade

    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        a = Image.fromarray(np.ascontiguousarray(getattr(skimage.data, name)()))
        tiles.append(np.asarray(a))
    out = np.empty((h, w, 3), np.uint8)
    y, i = 0, 0
    while y < h:
        x, row_h = 0, 0
        while x < w:
            t = tiles[i % len(tiles)]
            i += 1
            th, tw = min(t.shape[0], h - y), min(t.shape[1], w - x)
            out[y : y + th, x : x + tw] = t[:th, :tw]
            x, row_h = x + tw, max(row_h, th)
        y += row_h
    return degrade(out)[1]  # the whole mosaic, seams too: a sharp seam would look like a sharp photo


def write_photo(path: Path, megapixels: float) -> Path:
    """:func:`test_photo` saved to ``path`` (made once, then reused), in a child process: the runs measured
    later are forked from this process, and Linux counts the memory a process holds when it forks in its
    child's peak (``ru_maxrss``). Made here, a 24 MP photo's arrays read as a 1.98 GB peak of the first
    ``enhance`` run after it, whose own peak was 0.53 GB."""
    if not path.exists():
        code = "import sys; from pathlib import Path; from sharpkd.bench import save_photo; save_photo(Path(sys.argv[1]), float(sys.argv[2]))"
        subprocess.run([sys.executable, "-c", code, str(path), str(megapixels)], check=True)
    return path


def save_photo(path: Path, megapixels: float) -> None:
    image = Image.fromarray(test_photo(megapixels))
    image.save(path, **({"quality": 92} if path.suffix == ".jpg" else {"compress_level": 1}))


def write_folder(work: Path, count: int) -> Path:
    """A folder of ``count`` copies of the 12 MP JPEG test photo under ``work`` (made once, then reused)."""
    folder = work / f"folder-{count}"
    folder.mkdir(exist_ok=True)
    first = write_photo(work / "photo-12mp.jpg", 12)
    for i in range(count):
        if not (folder / f"{i:02d}.jpg").exists():
            (folder / f"{i:02d}.jpg").write_bytes(first.read_bytes())
    return folder


@dataclass
class Run:
    seconds: float
    peak_mb: float
    megapixels: float

    @property
    def mp_s(self) -> float:
        return self.megapixels / self.seconds


def median_run(runs: list[Run]) -> tuple[Run, str]:
    """The median run of repeated ones (the upper middle of an even count) and, for several, each run's
    seconds (" (a / b / c)") to print beside it."""
    middle = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    return middle, f" ({' / '.join(f'{r.seconds:.1f}' for r in runs)})" if len(runs) > 1 else ""


def _group_rss_mb(group: int) -> float:
    """Resident memory of every process in process group ``group`` together (Linux /proc; 0 elsewhere)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) == group:  # pgrp
            total += int(fields[21])  # rss, pages
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0


def busy_loop() -> subprocess.Popen:
    """One competing CPU-bound process (a single-threaded busy loop) until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_enhance(inputs: list[Path], out: Path, args: list[str], busy: bool = False, env: dict | None = None) -> Run:
    """``python -m sharpkd enhance INPUTS -o OUT ARGS --overwrite -q`` in a fresh process."""
    megapixels = 0.0
    for p in inputs:
        for f in sorted(p.iterdir()) if p.is_dir() else [p]:
            with Image.open(f) as im:
                megapixels += im.width * im.height / 1e6
    competitor = busy_loop() if busy else None
    group_peak = [0.0]
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "sharpkd", "enhance", *map(str, inputs), "-o", str(out), *args, "--overwrite", "-q"],
                                env={**os.environ, **(env or {})}, start_new_session=True)
        if "--jobs" in args and Path("/proc/self/stat").exists():  # several processes: sample their sum

            def sample() -> None:
                while proc.returncode is None:
                    group_peak[0] = max(group_peak[0], _group_rss_mb(proc.pid))
                    time.sleep(0.05)

            threading.Thread(target=sample, daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"sharpkd enhance failed (exit {proc.returncode})")
    return Run(seconds, max(usage.ru_maxrss / 1024, group_peak[0]), megapixels)


def stages(path: Path, model: str, tile: int) -> dict[str, float]:
    """Seconds of each stage for one photo, in this process (after a warm-up on a crop)."""
    from sharpkd import imagefile
    from sharpkd.inference import enhance_pixels, load, photo_run

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    out = {"import torch (fresh process)": time.perf_counter() - t0}
    loaded = load(model)
    t0 = time.perf_counter()
    pic = imagefile.read(path)
    out["decode"] = time.perf_counter() - t0
    enhance_pixels(loaded, pic.color[:256, :256], tile)  # warm-up
    estimate = 0.0
    if loaded.conditioned:
        t0 = time.perf_counter()
        photo_run(loaded, pic.color)
        estimate = time.perf_counter() - t0
        out["estimate (general)"] = estimate
    t0 = time.perf_counter()
    result, _ = enhance_pixels(loaded, pic.color, tile)
    out["network + conversions"] = time.perf_counter() - t0 - estimate
    target = path.with_name(f".bench-out{path.suffix}")
    t0 = time.perf_counter()
    imagefile.write(imagefile.Picture(result, format=pic.format), target)
    out["encode + write"] = time.perf_counter() - t0
    target.unlink()
    return out


def network_peak(model: str, seconds: float = 3.0) -> tuple[float, float]:
    """(GMAC/s the network reaches on a whole 1024x768 photo, GMAC/s of one 3x3 40-channel convolution
    at 1/4 resolution on the same pixels: what this CPU gives the model's main operation)."""
    import torch

    from sharpkd.inference import enhance_pixels, load
    from sharpkd.report import macs_per_pixel

    loaded = load(model)
    photo = test_photo(0.786)[:768, :1024]
    network = loaded.model
    if loaded.conditioned:  # the general model's network with its conditions; the estimator runs on 8 crops only
        from sharpkd.models.general import N_CONDITIONS, Told

        network = Told(loaded.model.net, torch.zeros(1, N_CONDITIONS))
    macs = macs_per_pixel(network) * photo.shape[0] * photo.shape[1]
    enhance_pixels(loaded, photo, 0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        enhance_pixels(loaded, photo, 0)
        n += 1
    model_rate = macs * n / (time.perf_counter() - t0) / 1e9
    conv = torch.nn.Conv2d(40, 40, 3, padding=1).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 40, 192, 256).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        conv(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            conv(x)
            n += 1
    conv_rate = 40 * 40 * 9 * 192 * 256 * n / (time.perf_counter() - t0) / 1e9
    return model_rate, conv_rate
