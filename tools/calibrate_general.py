"""Calibrate the blur estimate of a trained general model on the training photos (maintainers' tool).

    python tools/calibrate_general.py WEIGHTS --dataset mixed-general --out general-calibrated.pt [--every 2]

The same step ``sharpkd train-teacher --arch general`` runs at the end of training
(:func:`sharpkd.models.general.calibrate`), for weights trained with ``--no-calibrate`` (e.g. on a lent GPU,
where the calibration's CPU work would waste the GPU's time). Writes a weights file ``enhance --weights``
and ``tools/bundle_weights.py`` take.
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
    a = ap.parse_args()
    loaded = pretrained.load_file(a.weights)
    photos = [p.hr for p in load_split(find_dataset(a.dataset), "train")[:: a.every]]
    knots = calibrate(loaded.model, photos)
    print(json.dumps({"photos": len(photos), "blur_knots": knots}))
    state = {k: v.cpu() for k, v in loaded.model.state_dict().items()}
    info = {"calibrated_on": f"{a.dataset} train[::{a.every}]", "blur_knots": knots}
    save_atomic({"arch": loaded.arch, "config": loaded.model.config.to_dict(), "state_dict": state, "info": json.dumps(info)}, a.out)


if __name__ == "__main__":
    main()
