"""Speed of the bundled models on a 1024x768 photo, on this machine's CPU. Run by hand; prints a table.

    python benchmarks/bench_enhance.py [--models student teacher] [--repeats 5] [--threads N]

Numbers per model (median of ``--repeats`` runs after one warm-up, except the processes):
* model MP/s: ``sharpkd.inference.enhance`` on the whole 1024x768 image in one pass (``--tile 0``): the network, and
  for the general model its per-photo estimate;
* tile 512 / tile 128 MP/s: the same with 512 px and with the default 128 px tiles (each tile carries
  its context margin, which costs extra compute);
* process MP/s: one whole ``sharpkd enhance`` process on one JPEG file (Python start-up, imports, model
  load, decode, tiles, encode), wall time measured from outside; and one process on 10 such files.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image

from sharpkd import pretrained
from sharpkd.degrade import degrade
from sharpkd.inference import enhance


def photo_1024x768() -> np.ndarray:
    """A real photo of exactly 1024x768: scikit-image's astronaut, bicubic-resized, then degraded."""
    big = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((1024, 768), Image.BICUBIC))
    return degrade(big)[1]


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def process_seconds(model: str, image: np.ndarray, files: int = 1) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for i in range(files):
            Image.fromarray(image).save(src / f"photo{i}.jpg", quality=95)
        cmd = [sys.executable, "-m", "sharpkd", "enhance", str(src), "-o", str(Path(tmp) / "out"), "--model", model, "-q", "--device", "cpu"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["general", "x4"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    image = photo_1024x768()
    mp = image.shape[0] * image.shape[1] / 1e6
    print(f"CPU threads: {args.threads}; image 1024x768 ({mp:.3f} MP); median of {args.repeats}")
    print(f"{'model':10} {'params':>10} {'model MP/s':>11} {'tile 512':>9} {'tile 128':>9} {'process, 1 file':>16} {'process, 10 files':>18}")
    for name in args.models:
        loaded = pretrained.load(name, device="cpu")
        whole, t512, t128 = (median_seconds(lambda t=t: enhance(loaded, image, tile=t), args.repeats) for t in (0, 512, 128))
        one, ten = process_seconds(name, image), process_seconds(name, image, files=10)
        params = sum(p.numel() for p in loaded.model.parameters())
        print(f"{name:10} {params:>10,} {mp / whole:>11.2f} {mp / t512:>9.2f} {mp / t128:>9.2f} {mp / one:>16.2f} {mp * 10 / ten:>18.2f}", flush=True)


if __name__ == "__main__":
    main()
