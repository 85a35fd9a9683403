"""Speed of the bundled models on a 1024x768 photo, on this machine's CPU. Run by hand; prints a table.

    python benchmarks/bench_enhance.py [--models student teacher] [--repeats 5] [--threads N]

Three numbers per model:
* model MP/s: the network alone on the whole 1024x768 image (``--tile 0``), median of ``--repeats`` runs
  after one warm-up;
* tiled MP/s: the same through ``enhance_array`` with the default 128 px tiles (context margins cost
  extra compute, shown here);
* process MP/s: one whole ``sharpkd enhance`` process on a JPEG file (Python start-up, imports, model
  load, decode, tiles, encode), wall time measured from outside.
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
from sharpkd.enhance import enhance_array


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


def process_seconds(model: str, image: np.ndarray) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "photo.jpg"
        Image.fromarray(image).save(src, quality=95)
        cmd = [sys.executable, "-m", "sharpkd", "enhance", str(src), "-o", str(Path(tmp) / "out"), "--model", model, "-q", "--device", "cpu"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["student"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    image = photo_1024x768()
    mp = image.shape[0] * image.shape[1] / 1e6
    print(f"CPU threads: {args.threads}; image 1024x768 ({mp:.3f} MP); median of {args.repeats}")
    print(f"{'model':10} {'params':>10} {'model MP/s':>11} {'tiled MP/s':>11} {'process MP/s':>13}")
    for name in args.models:
        loaded = pretrained.load(name, device="cpu")
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
        with torch.inference_mode():
            whole = median_seconds(lambda: loaded.model(x), args.repeats)
        tiled = median_seconds(lambda: enhance_array(loaded, image, tile=128), args.repeats)
        proc = process_seconds(name, image)
        params = sum(p.numel() for p in loaded.model.parameters())
        print(f"{name:10} {params:>10,} {mp / whole:>11.2f} {mp / tiled:>11.2f} {mp / proc:>13.2f}")


if __name__ == "__main__":
    main()
