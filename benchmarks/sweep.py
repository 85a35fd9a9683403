"""Degradation sweep: how each model treats sharp, soft, upscaled, JPEG and noisy photos. Prints a table.

    python benchmarks/sweep.py --dataset mixed [--models general x4] [--weights RUN ...] [--usm 2.0,1.0] [--told] [--json F]
    python benchmarks/sweep.py --skimage [--photos DIR ...] [--cases ...] [--losers]     # photos from outside the data set
    python benchmarks/sweep.py --dataset mixed --train-every 8 ...                        # training photos, to choose on
    python benchmarks/sweep.py ... --cleanup-passes 1 2 4                                  # the cleanup stage's passes

For every validation HR photo of the prepared data set and every case below, the photo is degraded, the
model restores it, and PSNR-Y (project convention) of the input and of the output against the original
is recorded, per photo, and reported per part of the data set (its source folders): the mean gain and
the worst photo's. "gain" is output minus input. The sharp original (sigma 0, scale 1) shows whether a model
leaves good photos alone: there "input" is inf, so the table gives the output's PSNR to the original.
``--told`` adds each general model *told* the true conditions of the case (no estimate; noise and JPEG alone
through its cleanup network, where it has one): what its network
can do when the estimator is right.

``--skimage`` and ``--photos DIR`` sweep photos from outside the data set instead (scikit-image's sample
photos listed in :data:`SKIMAGE_PHOTOS`, or every image in DIR), as one part each; ``--cases`` can also
name the cases of :data:`MORE_CASES` (lighter and heavier noise and JPEG, soft photos with them); ``--losers`` lists every photo
that a model leaves more than 0.1 dB below its input. ``--cleanup-passes 1 2 4`` adds each general model with its cleanup
stage running that many passes of its network (:data:`sharpkd.models.cleanup.PASSES`: how that was chosen).
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from sharpkd import metrics, pretrained
from sharpkd.classical import UnsharpMask
from sharpkd.degrade import Degradation, apply
from sharpkd.inference import enhance
from sharpkd.pairs import find_dataset, load_split, parts

CASES = {
    "sharp original": Degradation(),
    "blur 0.6": Degradation(sigma_x=0.6, sigma_y=0.6),
    "blur 1.0, x2": Degradation(sigma_x=1.0, sigma_y=1.0, scale=2.0),
    "blur 0.5, x3": Degradation(sigma_x=0.5, sigma_y=0.5, scale=3.0),
    "blur 1.0, x4 (canonical)": Degradation(sigma_x=1.0, sigma_y=1.0, scale=4.0),
    "blur 1.6, x4": Degradation(sigma_x=1.6, sigma_y=1.6, scale=4.0),
    "JPEG q40": Degradation(jpeg=40),
    "noise 5": Degradation(noise=5.0),
}
MORE_CASES = {  # asked for by name (--cases): lighter and heavier artifacts, and soft photos with noise or JPEG
    "noise 2": Degradation(noise=2.0),
    "noise 8": Degradation(noise=8.0),
    "JPEG q70": Degradation(jpeg=70),
    "JPEG q30": Degradation(jpeg=30),
    "noise 4 + JPEG q60": Degradation(noise=4.0, jpeg=60),
    "blur 0.6 + noise 5": Degradation(sigma_x=0.6, sigma_y=0.6, noise=5.0),
    "blur 1.0, x2 + noise 5": Degradation(sigma_x=1.0, sigma_y=1.0, scale=2.0, noise=5.0),
    "blur 0.6 + JPEG q40": Degradation(sigma_x=0.6, sigma_y=0.6, jpeg=40),
    "canonical + JPEG q60": Degradation(sigma_x=1.0, sigma_y=1.0, scale=4.0, jpeg=60),
}
# scikit-image's colour photos that ship with it (no download): people, animals, food, objects, microscopy,
# astronomy, medicine; none of them is in the photos the bundled models learned from (sun80, natural_sr_train)
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "cat")


def sweep(restorers: dict, photos: list[np.ndarray], cases: list[str] | None = None) -> dict:
    """{case: {"input": [PSNR-Y per photo], name: [PSNR-Y per photo of each restorer]}}; each restorer
    is called with the degraded photo and the case's :class:`Degradation`. ``cases``: names of
    :data:`CASES` and :data:`MORE_CASES` (default all of :data:`CASES`)."""
    table = {}
    for case, d in {**CASES, **MORE_CASES}.items():
        if case not in (cases or CASES):  # MORE_CASES only when asked for
            continue
        rng = np.random.default_rng(0)
        degraded = [apply(hr, d, rng) for hr in photos]
        row = {"input": [metrics.psnr(lq, hr) for lq, hr in zip(degraded, photos)]}
        for name, restore in restorers.items():
            row[name] = [metrics.psnr(restore(lq, d), hr) for lq, hr in zip(degraded, photos)]
        table[case] = row
    return table


def told(loaded: pretrained.Loaded, lq: np.ndarray, d: Degradation) -> np.ndarray:
    """A general model's output when told the true conditions of ``d`` (whole photo, through
    the same inference core as ``enhance``): by its cleanup network where it has one and ``d`` is noise
    and/or JPEG alone (the photos that stage takes), else by its general network."""
    import torch

    from sharpkd.degrade import conditions
    from sharpkd.models.cleanup import ToldCleanup
    from sharpkd.models.general import Told

    cond = conditions(d)
    if max(cond[:2]) == 0 and max(cond[2:]) > 0 and loaded.model.cleanup is not None:
        network = ToldCleanup(loaded.model.cleanup, *cond[2:])
    else:
        network = Told(loaded.model.net, torch.tensor([cond], dtype=torch.float32))
    return enhance(replace(loaded, model=network, conditioned=False), lq, tile=0)


def print_table(table: dict, title: str) -> None:
    """Per case: the input's mean PSNR-Y; per model the mean gain and, in brackets, the worst photo's
    gain. For the sharp original (input = inf): the output's mean PSNR-Y to the original and the lowest."""
    names = list(next(iter(table.values())))
    print(f"{title}: PSNR-Y dB ({metrics.DEFAULT.describe()}); per model: mean gain (worst photo)")
    print(f"{'case':26}" + "".join(f"{n:>24}" for n in names))
    for case, row in table.items():
        base = np.array(row["input"])
        cells = [f"{np.mean(base):.2f}".rjust(24)]
        for n in names[1:]:
            v = np.array(row[n])
            if not np.isfinite(base).all():
                mean = "inf" if np.isinf(v).all() else f"{np.mean(np.minimum(v, 99)):.2f}"
                cells.append(f"{mean} (min {np.min(v):.2f})".rjust(24))
            else:
                gain = v - base
                cells.append(f"{np.mean(gain):+.2f} ({np.min(gain):+.2f})".rjust(24))
        print(f"{case:26}" + "".join(cells))


def print_losers(table: dict, names: list[str]) -> None:
    """Each photo a restorer leaves more than 0.1 dB below its input, per case."""
    for case, row in table.items():
        base = np.array(row["input"])
        if not np.isfinite(base).all():  # the sharp original: its table row gives the lowest PSNR
            continue
        for model, values in list(row.items())[1:]:
            gain = np.array(values) - base
            bad = [f"{names[i]} {gain[i]:+.2f}" for i in np.flatnonzero(gain < -0.1)]
            if bad:
                print(f"  worse by > 0.1 dB, {case}, {model}: " + ", ".join(bad))


def dataset_parts(dataset_name: str | None, split: str = "val", every: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """{part: {photo name: HR pixels}} of every ``every``-th photo of a prepared data set's ``split``."""
    dataset = find_dataset(dataset_name)
    pairs = load_split(dataset, split)[::every]
    part_of = parts(dataset)
    return {part: {p.name: p.hr for p in pairs if part_of[p.name] == part} for part in dict.fromkeys(part_of[p.name] for p in pairs)}


def outside_parts(skimage: bool, folders: list[Path]) -> dict[str, dict[str, np.ndarray]]:
    """{part: {photo name: RGB uint8 pixels}}: scikit-image's sample photos and every image in ``folders``."""
    from sharpkd.prepare import Source, image_files, load_rgb8

    out = {}
    if skimage:
        out["scikit-image"] = {n: load_rgb8(Source(n, "val", sample=n))[0] for n in SKIMAGE_PHOTOS}
    for folder in folders:
        out[str(folder)] = {f.name: load_rgb8(Source(f.stem, "val", path=f))[0] for f in image_files(folder)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", help="prepared data set (its val split is used) [default: newest]")
    ap.add_argument("--models", nargs="*", default=["general"], help="bundled models")
    ap.add_argument("--weights", nargs="*", default=[], help="run folders or weights files")
    ap.add_argument("--usm", help="also an unsharp mask RADIUS,AMOUNT (e.g. the one tuned on the training photos)")
    ap.add_argument("--told", action="store_true", help="also each general model told the true conditions")
    ap.add_argument("--json", type=Path, help="also write the per-photo table as JSON")
    ap.add_argument("--cases", nargs="*", choices=[*CASES, *MORE_CASES], help="only these cases [default: all of CASES]")
    ap.add_argument("--train-every", type=int, help="sweep every Nth training photo instead of the validation ones (to choose on)")
    ap.add_argument("--skimage", action="store_true", help="sweep scikit-image's sample photos instead of a data set")
    ap.add_argument("--photos", nargs="*", type=Path, default=[], help="sweep every image in these folders instead")
    ap.add_argument("--losers", action="store_true", help="list the photos a model leaves > 0.1 dB below the input")
    ap.add_argument("--cleanup-passes", type=int, nargs="*", default=[],
                    help="also each general model with its cleanup stage running this many passes (1-4; shipped: 2)")
    args = ap.parse_args()
    if args.skimage or args.photos:
        named_parts = outside_parts(args.skimage, args.photos)
    else:
        named_parts = dataset_parts(args.dataset, "train" if args.train_every else "val", args.train_every or 1)
    restorers = {}
    if args.usm:
        r, a = (float(v) for v in args.usm.split(","))
        usm = UnsharpMask(r, a)
        restorers[f"unsharp {r},{a}"] = lambda lq, d: usm(lq)
    loaded_models = [pretrained.load(name) for name in args.models] + [pretrained.load_file(Path(w)) for w in args.weights]
    for loaded in loaded_models:
        restorers[loaded.name] = lambda lq, d, m=loaded: enhance(m, lq, tile=0)
        if args.told and loaded.conditioned:
            restorers[f"{loaded.name} told"] = lambda lq, d, m=loaded: told(m, lq, d)
        for passes in args.cleanup_passes if loaded.conditioned and loaded.model.cleanup is not None else []:
            model = copy.deepcopy(loaded.model)
            model.cleanup.passes = passes
            variant = replace(loaded, model=model)
            restorers[f"{loaded.name} {passes} pass"] = lambda lq, d, m=variant: enhance(m, lq, tile=0)
    results = {}
    for part, named in named_parts.items():
        results[part] = sweep(restorers, list(named.values()), args.cases)
        print_table(results[part], f"{part}: {len(named)} photos")
        if args.losers:
            print_losers(results[part], list(named))
        print(flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
