"""Give a general model a cleanup stage for noise and JPEG (maintainers' tool, docs/model-card.md).

    python tools/add_cleanup.py GENERAL CLEANUP_RUN --dataset mixed --out W.pt [--every 4] [--zero-quantile 0.95] [--scale 1.0]

GENERAL: the general model to extend (a bundled one, 'general' or 'fast', or a weights file); CLEANUP_RUN: a
general model trained with ``train-teacher --arch general --told-only`` on a data set prepared with
``--degradations artifacts``, whose network becomes the cleanup network. The knots that turn the
measured noise and blocking into the conditions the cleanup network is told are calibrated on every
``--every``-th training photo of ``--dataset`` (:func:`sharpkd.models.cleanup.calibrate`):
``--zero-quantile`` of the sharp photos' statistics maps to 0, ``--scale`` multiplies the conditions
(below 1: tell less than measured). ``--max-raw-blur B``: the stage runs only on photos whose raw blur guess
(the general model's estimator, before calibration) is at most B. ``--knots-from W`` takes the knots (and their record) from the cleanup
stage of W instead, and ``--quantile``/``--scale`` refit them from the statistics W recorded, without
measuring again; ``--keep-knots`` keeps GENERAL's own knots and ``max_raw_blur`` (a general model that
already has a cleanup stage: only its network is replaced; the bundled weights record no calibration). Writes a weights file that ``enhance --weights`` and
``tools/bundle_weights.py`` take.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sharpkd import pretrained
from sharpkd.models.cleanup import calibrate, fitted_knots
from sharpkd.models.general import General, GeneralConfig
from sharpkd.pairs import find_dataset, load_split
from sharpkd.training import save_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("general")
    ap.add_argument("cleanup_run", type=Path)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--every", type=int, default=4, help="calibrate on every N-th training photo")
    ap.add_argument("--zero-quantile", type=float, default=0.95, help="this quantile of sharp photos' statistics maps to 0")
    ap.add_argument("--scale", type=float, default=1.0, help="tell the cleanup network this times the calibrated conditions")
    ap.add_argument("--noise-scale", type=float, help="the same for the noise condition alone (0: no noise cleanup) [default: --scale]")
    ap.add_argument("--max-raw-blur", type=float, default=1.0,
                    help="the stage runs only where the estimator's raw blur guess is at most this (1: always)")
    ap.add_argument("--knots-from", type=Path, help="refit the knots from the statistics this weights file recorded instead of measuring")
    ap.add_argument("--keep-knots", action="store_true", help="keep GENERAL's own cleanup knots and max raw blur; replace only the network")
    a = ap.parse_args()
    base = pretrained.load_name_or_file(a.general)
    source = pretrained.load_file(a.cleanup_run)
    if base.arch != "general" or source.arch != "general":
        raise SystemExit("both GENERAL and CLEANUP_RUN must be general models")
    net = source.model.net
    config = GeneralConfig(**{**base.model.config.to_dict(), "cleanup_channels": net.config.channels,
                              "cleanup_negative_slope": net.config.negative_slope})
    if net.config.blocks != config.blocks:
        raise SystemExit(f"the cleanup network has {net.config.blocks} blocks, the general model {config.blocks}")
    model = General(config)
    # the base's own cleanup network, if any, is replaced (it may be of another width)
    kept = {k: v for k, v in base.model.state_dict().items() if not k.startswith("cleanup.net.")}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith("cleanup.") for k in missing):
        raise SystemExit(f"GENERAL does not fit its own config: missing {missing}, unexpected {unexpected}")
    model.cleanup.net.load_state_dict(net.state_dict())
    if a.keep_knots:  # the knots and max_raw_blur came with GENERAL's state
        if base.model.cleanup is None:
            raise SystemExit("--keep-knots: GENERAL has no cleanup stage")
        info, max_raw_blur = {"knots": "GENERAL's, kept"}, float(base.model.cleanup.max_raw_blur)
    else:
        if a.knots_from:  # what an earlier calibration measured
            info = json.loads(torch.load(a.knots_from, weights_only=True)["info"])
            info = {k: v for k, v in info.items() if k not in ("general", "cleanup_run", "noise_scale")}
        else:
            photos = [p.hr for p in load_split(find_dataset(a.dataset), "train")[:: a.every]]
            info = calibrate(model.cleanup, photos) | {"calibrated_on": f"{a.dataset} train[::{a.every}]"}
        info |= {"zero_quantile": a.zero_quantile, "scale": a.scale} | ({} if a.noise_scale is None else {"noise_scale": a.noise_scale})
        model.cleanup.knots.copy_(fitted_knots(info))
        info["knots"] = [[[round(v, 4) for v in row] for row in kind] for kind in model.cleanup.knots.tolist()]
        max_raw_blur = a.max_raw_blur
        model.cleanup.max_raw_blur.fill_(max_raw_blur)
    info |= {"general": base.source, "cleanup_run": str(a.cleanup_run), "max_raw_blur": max_raw_blur}
    print(json.dumps(info))
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    save_atomic({"arch": "general", "config": config.to_dict(), "state_dict": state, "info": json.dumps(info)}, a.out)


if __name__ == "__main__":
    main()
