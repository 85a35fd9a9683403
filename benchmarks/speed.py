"""Speed and memory of ``sharpkd enhance``: whole process and each stage, quiet and beside a busy CPU.

    python benchmarks/speed.py [--models general x4] [--sizes 1 12 24] [--formats png jpg] [--tiles 128 0]
                               [--busy] [--folder 10 [--jobs 1 2] [--rounds 3]] [--stages] [--peak]

Prints markdown tables (docs/performance.md keeps the latest, with the machine it ran on). Whole
process: a fresh ``python -m sharpkd enhance`` per photo (start-up included), output MP/s and peak RSS;
``--busy`` adds the same runs beside one competing CPU-bound process; ``--folder N`` times a folder of N
12 MP JPEGs, with each ``--jobs`` value (``enhance --jobs``; peak RSS is then the sum over the processes).
``--rounds N`` runs every case N times, the models (and ``--jobs`` values) interleaved, and prints the
median of each. ``--stages``: seconds per stage of one photo. ``--peak``: GMAC/s of the
network against one 3x3 convolution (the fraction of what this CPU gives the model's main operation).
See :mod:`sharpkd.bench` for how each is measured.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

from sharpkd import bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["general", "x4"])
    ap.add_argument("--sizes", type=float, nargs="*", default=[1, 12, 24], help="megapixels")
    ap.add_argument("--formats", nargs="*", default=["png", "jpg"])
    ap.add_argument("--tiles", type=int, nargs="*", default=[128, 0])
    ap.add_argument("--busy", action="store_true", help="also beside one competing CPU-bound process")
    ap.add_argument("--folder", type=int, default=0, help="also a folder of N 12 MP JPEGs")
    ap.add_argument("--jobs", type=int, nargs="*", default=[1], help="enhance --jobs values for the folder")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each model (and --jobs value), interleaved; the median is printed")
    ap.add_argument("--stages", action="store_true")
    ap.add_argument("--peak", action="store_true")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sharpkd-bench")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
    loads = [False, True] if a.busy else [False]
    print("| model | photo | tile | CPU | seconds | output MP/s | peak RSS MB |")
    print("|---|---|---|---|---:|---:|---:|")
    for size in a.sizes:
        for fmt in a.formats:
            photo = bench.write_photo(a.work / f"photo-{size:g}mp.{fmt}", size)
            for tile in a.tiles:
                for busy in loads:
                    # the models alternate round by round, so that their ratio holds on a machine that drifts
                    runs: dict[str, list] = {m: [] for m in a.models}
                    for _ in range(a.rounds):
                        for model in a.models:
                            runs[model].append(bench.run_enhance([photo], a.work / "out", ["--model", model, "--tile", str(tile)], busy))
                    for model, rs in runs.items():
                        r, each = bench.median_run(rs)
                        print(f"| {model} | {size:g} MP {fmt.upper()} | {tile or 'whole'} | {'busy' if busy else 'quiet'} | "
                              f"{r.seconds:.1f}{each} | {r.mp_s:.2f} | {r.peak_mb:.0f} |", flush=True)
    if a.folder:
        folder = bench.write_folder(a.work, a.folder)
        for busy in loads:
            folder_runs: dict[tuple[str, int], list] = {(m, j): [] for m in a.models for j in a.jobs}
            for _ in range(a.rounds):
                for (model, jobs), rs in folder_runs.items():
                    rs.append(bench.run_enhance([folder], a.work / "out-folder", ["--model", model, "--jobs", str(jobs)], busy))
            for (model, jobs), rs in folder_runs.items():
                r, each = bench.median_run(rs)
                print(f"| {model} | folder of {a.folder} x 12 MP JPEG, --jobs {jobs} | 128 | {'busy' if busy else 'quiet'} | "
                      f"{r.seconds:.1f}{each} | {r.mp_s:.2f} | {r.peak_mb:.0f} |", flush=True)
    if a.stages:
        print("\n| model | photo | stage | seconds |\n|---|---|---|---:|")
        for model in a.models:
            for fmt in a.formats:
                photo = bench.write_photo(a.work / f"photo-12mp.{fmt}", 12)
                for stage, s in bench.stages(photo, model, 128).items():
                    print(f"| {model} | 12 MP {fmt.upper()} | {stage} | {s:.2f} |", flush=True)
    if a.peak:
        print("\n| model | network GMAC/s (whole 1024x768) | one 3x3 40-ch conv GMAC/s | fraction |\n|---|---:|---:|---:|")
        for model in a.models:
            net, conv = bench.network_peak(model)
            print(f"| {model} | {net:.1f} | {conv:.1f} | {net / conv:.0%} |", flush=True)


if __name__ == "__main__":
    main()
