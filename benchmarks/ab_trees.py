"""Whole-process speed of two checkouts of sharpkd, interleaved: what a change (new weights, new code) gave.

    git worktree add /tmp/sharpkd-before REV
    python benchmarks/ab_trees.py /tmp/sharpkd-before . [--sizes 12] [--formats png jpg] [--folder 10]
                                  [--jobs 1 2] [--rounds 3] [--busy]

Each case runs ``python -m sharpkd enhance`` with the defaults in a fresh process, once per tree per
round, the trees alternating (A, B, A, B, ...), so that a machine that gets slower or faster over the
minutes does not favour either; each tree is put first on ``PYTHONPATH``. Prints the median seconds
(of an even count the upper middle), output MP/s and peak RSS of each tree and the speed-up B over A. On a shared machine compare only the
ratio of one run (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sharpkd import bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="checkout A (the before)")
    ap.add_argument("b", type=Path, help="checkout B (the after)")
    ap.add_argument("--sizes", type=float, nargs="*", default=[12], help="single photos of these megapixels")
    ap.add_argument("--formats", nargs="*", default=["png"])
    ap.add_argument("--folder", type=int, default=0, help="also a folder of N 12 MP JPEGs")
    ap.add_argument("--jobs", type=int, nargs="*", default=[1], help="enhance --jobs values for the folder")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--busy", action="store_true", help="beside one competing CPU-bound process")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "sharpkd-bench")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    trees = {"A": a.a.resolve(), "B": a.b.resolve()}
    a.work = a.work.resolve()
    os.chdir(a.work)  # python -m puts the working directory first on sys.path: it must hold no sharpkd
    cases = []
    for size in a.sizes:
        for fmt in a.formats:
            cases.append((f"{size:g} MP {fmt.upper()}", [bench.write_photo(a.work / f"photo-{size:g}mp.{fmt}", size)], []))
    if a.folder:
        folder = bench.write_folder(a.work, a.folder)
        for jobs in a.jobs:
            cases.append((f"folder of {a.folder} x 12 MP JPEG, --jobs {jobs}", [folder], ["--jobs", str(jobs)]))
    for key, tree in trees.items():  # each tree must be the one imported, not an installed copy
        found = subprocess.run([sys.executable, "-c", "import sharpkd; print(sharpkd.__file__)"], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(tree)}, check=True).stdout.strip()
        if not Path(found).resolve().is_relative_to(tree):
            raise SystemExit(f"{key}: PYTHONPATH={tree} imports {found}; give the root of a sharpkd checkout")
    print(f"A = {trees['A']}, B = {trees['B']}; {a.rounds} rounds, interleaved; {'busy' if a.busy else 'quiet'}\n")
    print("| photo | A seconds (each) | B seconds (each) | A MP/s | B MP/s | B / A speed | A / B peak MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, inputs, args in cases:
        runs: dict[str, list] = {"A": [], "B": []}
        for _ in range(a.rounds):
            for key, tree in trees.items():
                runs[key].append(bench.run_enhance(inputs, a.work / f"out-{key}", args, a.busy, env={"PYTHONPATH": str(tree)}))
        (ra, each_a), (rb, each_b) = bench.median_run(runs["A"]), bench.median_run(runs["B"])
        peak = {k: max(r.peak_mb for r in v) for k, v in runs.items()}
        print(f"| {label} | {ra.seconds:.1f}{each_a} | {rb.seconds:.1f}{each_b} | {ra.mp_s:.2f} | {rb.mp_s:.2f} | "
              f"{ra.seconds / rb.seconds:.2f}x | {peak['A']:.0f} / {peak['B']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
