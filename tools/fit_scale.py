"""Give a general model a whole-photo scale guess (maintainers' tool, docs/model-card.md "The whole-photo scale guess").

    python tools/fit_scale.py GENERAL --dataset mixed --out W.pt [--every 4] [--steps 2000]
    python tools/fit_scale.py fast --head-from W.pt --out W_FAST.pt

GENERAL: a bundled general model ('general' or 'fast') or a weights file. The estimator's crop-averaged
scale guess errs low on some photos (it was trained with a quantile loss, q = 0.3); this adds a second
scale head, a small MLP on the estimator's features pooled over all of a photo's crops, fitted on every ``--every``-th training photo of ``--dataset`` degraded the ways of
:data:`sharpkd.models.general.SCALE_LADDER` (:func:`sharpkd.models.general.fit_pooled_scale`). Everything
else is copied unchanged; the pooled guess is used only on photos the estimator finds soft, so photos it
finds clean stay untouched. ``--head-from W`` takes the head (and its record) from W instead of fitting,
where both models have the same estimator (the bundled ``general`` and ``fast`` do). A head GENERAL
already has is replaced (fitted again, or taken from W). Writes a weights file that ``enhance --weights`` and ``tools/bundle_weights.py`` take.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sharpkd import pretrained
from sharpkd.models.general import General, GeneralConfig, fit_pooled_scale
from sharpkd.pairs import find_dataset, load_split
from sharpkd.training import save_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("general")
    ap.add_argument("--dataset", help="prepared data set whose training photos the head is fitted on")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--every", type=int, default=4, help="fit on every N-th training photo")
    ap.add_argument("--steps", type=int, default=2000, help="full-batch Adam steps of the fit")
    ap.add_argument("--head-from", type=Path, help="copy the head from this weights file (same estimator) instead of fitting")
    a = ap.parse_args()
    base = pretrained.load_name_or_file(a.general)
    if base.arch != "general":
        raise SystemExit("GENERAL must be a general model")
    config = GeneralConfig(**{**base.model.config.to_dict(), "pooled_scale": True})
    model = General(config).eval()
    missing, unexpected = model.load_state_dict(base.model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("estimator.scale_head.") for k in missing):
        raise SystemExit(f"GENERAL does not fit its own config: missing {missing}, unexpected {unexpected}")
    if a.head_from:
        donor = torch.load(a.head_from, weights_only=True)
        same = all(  # the estimator the head reads; a head GENERAL already has is replaced
            torch.equal(v, donor["state_dict"][f"estimator.{k}"].to(v))
            for k, v in base.model.estimator.state_dict().items() if not k.startswith("scale_head.")
        )
        if not same or "estimator.scale_head.0.weight" not in donor["state_dict"]:
            raise SystemExit(f"{a.head_from}: not a pooled scale head on the same estimator as {a.general}")
        model.estimator.scale_head.load_state_dict({k: donor["state_dict"][f"estimator.scale_head.{k}"] for k in model.estimator.scale_head.state_dict()})
        info = json.loads(donor["info"]) | {"general": base.source, "head_from": str(a.head_from)}
    elif a.dataset:
        photos = [p.hr for p in load_split(find_dataset(a.dataset), "train")[:: a.every]]
        info = fit_pooled_scale(model, photos, a.steps) | {"fitted_on": f"{a.dataset} train[::{a.every}]", "general": base.source}
    else:
        raise SystemExit("give --dataset to fit the head, or --head-from to copy one")
    print(json.dumps(info))
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    save_atomic({"arch": "general", "config": config.to_dict(), "state_dict": state, "info": json.dumps(info)}, a.out)


if __name__ == "__main__":
    main()
