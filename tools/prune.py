"""A narrower student or general model cut from a wider one (maintainers' tool, docs/model-card.md).

    python tools/prune.py general --channels 32 --dataset mixed-general --out P.pt
    python tools/prune.py x4 --channels 32 --dataset mixed --out P.pt

Why: the speed issue needs a default about 1.8x cheaper than 40 x 8 (32 channels suit the CPU's vector
width), and 32 x 8 general bodies trained fresh stayed 0.26 dB behind the bundled one after 5,000 GPU
steps. Cut from the bundled body instead, the student starts near it: drop the channels whose loss
changes the output least, then repair with distillation from the wide model
(``sharpkd distill --teacher bundled-general --init P.pt --keep-estimator``; a cut ``x4`` with
``sharpkd distill --teacher bundled --init P.pt``).

Greedy, measured on ``--crops`` training crops of the data set's degradation range, each told its true
conditions (``x4``: crops of the data set's stored pairs): first the residual stream (the head's outputs and every block's 1x1 outputs share it), one
channel at a time, each time dropping the one whose zeroing moves the output least (L1 to the wide
model's output); then each block's inner channels the same way, block by block. The result
(``student.narrowed``) computes exactly the wide model with those channels zeroed; a general model's
estimator (with its calibration and whole-photo scale head) and cleanup stage are copied unchanged.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sharpkd import models, pretrained
from sharpkd.models.student import Student, _act, narrowed
from sharpkd.pairs import CropSampler, find_dataset, load_split, read_manifest
from sharpkd.train_teacher import general_degradations
from sharpkd.training import TrainError


def masked_forward(net: Student, x: torch.Tensor, cond: torch.Tensor, stream: torch.Tensor, inner: list[torch.Tensor]) -> torch.Tensor:
    """``net`` with its stream channels multiplied by ``stream`` and block ``i``'s inner channels by
    ``inner[i]`` (masks of 0/1): what ``narrowed`` computes when the masks select its channels."""
    s, slope = net.config.unshuffle, net.config.negative_slope  # a leaky unit passes 0 as 0, as a ReLU does
    m = stream[None, :, None, None]
    h = _act(net.head(net._fold(x, cond)), slope) * m
    for block, keep in zip(net.body, inner):
        h = h + block.mix(_act(block.spatial(h), slope) * keep[None, :, None, None]) * m
    return x + F.pixel_shuffle(net.tail(h), s)


def greedy(mask: torch.Tensor, drop: int, cost) -> list[int]:
    """Zero ``drop`` entries of ``mask`` (in place), each time the one whose zeroing ``cost`` rates
    lowest; returns the kept indices."""
    for _ in range(drop):
        best, best_cost = -1, float("inf")
        for c in mask.nonzero().flatten().tolist():
            mask[c] = 0
            value = cost()
            mask[c] = 1
            if value < best_cost:
                best, best_cost = c, value
        mask[best] = 0
    return mask.nonzero().flatten().tolist()


@torch.no_grad()
def prune(net: Student, channels: int, lq: torch.Tensor, cond: torch.Tensor | None, log=print):
    """``net`` narrowed to ``channels`` (a Student), and the kept stream and inner channels; the choice
    measured on ``lq`` told ``cond`` (None for a student without conditions)."""
    width = net.config.channels
    reference = net(lq, cond)
    stream = torch.ones(width)
    inner = [torch.ones(width) for _ in net.body]

    def cost() -> float:
        return float(F.l1_loss(masked_forward(net, lq, cond, stream, inner), reference))

    keep_stream = greedy(stream, width - channels, cost)
    log(f"stream: kept {keep_stream}; output L1 to the wide model {cost():.5f}")
    keep_inner = []
    for i, mask in enumerate(inner):
        keep_inner.append(greedy(mask, width - channels, cost))
        log(f"block {i}: output L1 {cost():.5f}")
    return narrowed(net, keep_stream, keep_inner), keep_stream, keep_inner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", help="a student or general model: weights file, run folder, or a bundled name (x4, general)")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--dataset", default="mixed-general",
                    help="a general model: a data set prepared with --degradations general; a student: any prepared data set")
    ap.add_argument("--crops", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    path = Path(a.weights)
    loaded = pretrained.load_file(path) if path.exists() else pretrained.load(a.weights)
    if loaded.arch not in ("student", "general"):
        raise SystemExit(f"{a.weights}: a {loaded.arch} model; this tool narrows students and general models")
    general = loaded.arch == "general"
    net = loaded.model.net if general else loaded.model
    if not 0 < a.channels < net.config.channels:
        raise SystemExit(f"--channels must be between 1 and {net.config.channels - 1}")
    dataset = find_dataset(a.dataset)
    try:
        degradations = general_degradations(dataset, read_manifest(dataset)) if general else None
    except TrainError as e:
        raise SystemExit(str(e)) from None
    sampler = CropSampler(load_split(dataset, "train"), 128, 4, a.seed, degradations)
    lq, _, cond = sampler.batch(0, a.crops)
    start = time.time()
    cut, stream, inner = prune(net.eval(), a.channels, lq, cond if general else None)
    if general:  # the cut body; everything else (estimator and its scale head, cleanup stage) copied as it is
        model = models.build("general", {**loaded.model.config.to_dict(), "channels": a.channels})
        rest = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("net.")}
        model.load_state_dict(rest | {f"net.{k}": v for k, v in cut.state_dict().items()})
    else:
        model = cut
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    kept = {"source": loaded.source, "stream": stream, "inner": inner}  # recorded beside the weights
    torch.save({"arch": loaded.arch, "config": model.config.to_dict(), "state_dict": state, "pruned": kept}, a.out)
    print(f"{a.out}: {loaded.arch} {a.channels} x {net.config.blocks} from {loaded.source} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
