"""A general model's cleanup network as a general model of its own, to train further (maintainers' tool).

    python tools/cleanup_run.py GENERAL --out W.pt

GENERAL: a general model with a cleanup stage (a bundled one, 'general' or 'fast', or a weights file).
Writes a general model whose network is GENERAL's cleanup network and whose estimator is GENERAL's: what
``sharpkd train-teacher --arch general --told-only --keep-estimator --init W.pt`` continues to train, and
what ``tools/add_cleanup.py GENERAL RUN --keep-knots`` then attaches again. Needed because the bundled
weights hold the cleanup network but not the run it came from.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sharpkd import pretrained
from sharpkd.models.general import General, GeneralConfig
from sharpkd.training import save_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("general")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    base = pretrained.load_name_or_file(a.general)
    if base.arch != "general" or base.model.cleanup is None:
        raise SystemExit(f"{a.general}: not a general model with a cleanup stage")
    net = base.model.cleanup.net
    config = GeneralConfig(**{**base.model.config.to_dict(), "channels": net.config.channels,
                              "negative_slope": net.config.negative_slope, "cleanup_channels": 0})
    model = General(config)
    model.net.load_state_dict(net.state_dict())
    model.estimator.load_state_dict(base.model.estimator.state_dict())
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    save_atomic({"arch": "general", "config": config.to_dict(), "state_dict": state}, a.out)
    print(f"{a.out}: the cleanup network of {base.source} ({net.config.channels} x {net.config.blocks}), its estimator")


if __name__ == "__main__":
    main()
