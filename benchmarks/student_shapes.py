"""Network speed of candidate student shapes (channels x blocks, tile margin), before training any.

    python benchmarks/student_shapes.py [--shapes 40x8:28 32x8:28 32x6:24] [--megapixels 3] [--rounds 3]

Each shape is built with random weights (speed does not depend on them) and run through the same
inference core as ``sharpkd enhance`` (:func:`sharpkd.inference.enhance_pixels`, 128 px tiles, the
given context margin in px), rounds interleaved, median seconds per photo. MACs per output pixel are
counted over the convolutions actually run (:func:`sharpkd.report.macs_per_pixel`). Compare the rows
of one run only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from sharpkd import inference, pretrained
from sharpkd.models.student import Student, StudentConfig
from sharpkd.report import macs_per_pixel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="*", default=["40x8:28", "32x8:28", "32x6:24", "32x6:20", "24x8:28", "40x6:24"],
                    help="CHANNELSxBLOCKS:MARGIN")
    ap.add_argument("--megapixels", type=float, default=3.0)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    h = int((a.megapixels * 1e6 * 3 / 4) ** 0.5) // 4 * 4
    w = h * 4 // 3 // 4 * 4
    photo = (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)
    models = {}
    for text in a.shapes:
        shape, margin = text.split(":")
        c, b = (int(v) for v in shape.split("x"))
        torch.manual_seed(0)
        net = Student(StudentConfig(channels=c, blocks=b))
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.02)
        net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        models[text] = (c, b, macs_per_pixel(net), pretrained.Loaded(net, text, "student", text, int(margin), 4, False))
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(a.rounds):
        for text, (_, _, _, loaded) in models.items():
            t = time.perf_counter()
            inference.enhance_pixels(loaded, photo, tile=a.tile)
            times[text].append(time.perf_counter() - t)
    base = statistics.median(times[a.shapes[0]])
    print(f"{w}x{h} photo, {a.tile} px tiles, {torch.get_num_threads()} threads, median of {a.rounds} interleaved rounds\n")
    print("| shape | margin px | MACs/px | seconds | MP/s | speed vs first |")
    print("|---|---:|---:|---:|---:|---:|")
    for text, (c, b, macs, loaded) in models.items():
        s = statistics.median(times[text])
        print(f"| {c} x {b} | {loaded.context} | {macs:,.0f} | {s:.3f} | {h * w / 1e6 / s:.2f} | {base / s:.2f}x |")


if __name__ == "__main__":
    main()
