"""Calibrate the blur estimate of a trained general model on the training photos (maintainers' tool).

    python tools/calibrate_general.py WEIGHTS --dataset mixed --out general-calibrated.pt [--every 2] [--blur-scale 0.6] [--keep-knots]

The same step ``sharpkd train-teacher --arch general`` runs at the end of training
(:func:`sharpkd.models.general.calibrate`), for weights trained with ``--no-calibrate`` (e.g. on a lent GPU,
where the calibration's CPU work would waste the GPU's time). Writes a weights file ``enhance --weights``
and ``tools/bundle_weights.py`` take.

``--blur-scale S`` then tells the network S times the calibrated blur: an over-estimated blur
over-sharpens (halos, up to -5 dB on a photo), an under-estimated one only gains less. The bundled
general model uses 0.6, chosen on 48 training photos (every 17th from the 6th) degraded six ways (blur 0.6,
blur 0.8, x2, blur 1.0 x2, canonical, blur 1.6 x4): photos made worse by more than 0.1 dB: 21 at 1.0, 10
at 0.85, 3 at 0.7, 1 at 0.6 and 0.5; mean gains best at 0.6-0.7 (docs/model-card.md).
``--keep-knots`` skips the calibration and only rescales the knots already in WEIGHTS.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sharpkd import pretrained
from sharpkd.models.general import calibrate
from sharpkd.pairs import find_dataset, load_split
from sharpkd.training import save_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--every", type=int, default=2, help="use every N-th training photo")
    ap.add_argument("--blur-scale", type=float, default=1.0, help="tell the network this times the calibrated blur")
    ap.add_argument("--keep-knots", action="store_true", help="do not calibrate; rescale the knots WEIGHTS has")
    a = ap.parse_args()
    loaded = pretrained.load_file(a.weights)
    if not a.keep_knots:
        photos = [p.hr for p in load_split(find_dataset(a.dataset), "train")[:: a.every]]
        knots = calibrate(loaded.model, photos)
        print(json.dumps({"photos": len(photos), "blur_knots": knots}))
    loaded.model.estimator.blur_knots[1] *= a.blur_scale
    knots = [[round(float(v), 4) for v in row] for row in loaded.model.estimator.blur_knots]
    print(json.dumps({"blur_scale": a.blur_scale, "blur_knots": knots}))
    state = {k: v.cpu() for k, v in loaded.model.state_dict().items()}
    info = {"calibrated_on": f"{a.dataset} train[::{a.every}]", "blur_scale": a.blur_scale, "blur_knots": knots}
    save_atomic({"arch": loaded.arch, "config": loaded.model.config.to_dict(), "state_dict": state, "info": json.dumps(info)}, a.out)


if __name__ == "__main__":
    main()
