"""The compact student: a residual CNN that works at 1/4 resolution.

Why this shape: the degraded input is a bicubic upsampling of a 4x smaller image, so nearly all of its
information lives on a 4x coarser grid. Pixel-unshuffle (x4) folds each 4x4 block into 48 channels, the
body runs at 1/16 of the pixels, pixel-shuffle unfolds the predicted residual, and a global skip adds the
input back: the network only learns the missing detail. Measured here this reaches the quality of a
full-resolution net at about 5x the speed.

Each body block is a 3x3 conv, ReLU, then a 1x1 conv, with a skip. The 1x1 conv adds capacity without
widening the receptive field, which keeps the context margin of tiled inference (and so its cost) small.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class StudentConfig:
    channels: int = 40
    blocks: int = 8
    unshuffle: int = 4
    conditions: int = 0  # extra constant input maps (the general model's degradation conditions)
    # > 0: leaky ReLUs. Measured on the bundled general (plain ReLUs): on photos that look sharp (noise or
    # JPEG alone) 6 % of its head units are alive against 33 % on canonical crops, and the head's gradient
    # is 100x smaller (8e-7 against 1e-4): the network cannot learn anything new for such photos.
    negative_slope: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    def __init__(self, channels: int, negative_slope: float = 0.0) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(channels, channels, 3, padding=1)
        self.mix = nn.Conv2d(channels, channels, 1)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(_act(self.spatial(x), self.negative_slope))


def _act(x: torch.Tensor, negative_slope: float, inplace: bool = False) -> torch.Tensor:
    """ReLU (slope 0: the bundled models, bit for bit as before) or leaky ReLU."""
    if negative_slope == 0.0:
        return x.relu_() if inplace else F.relu(x)
    return F.leaky_relu(x, negative_slope, inplace=inplace)


class Student(nn.Module):
    """Input and output: Bx3xHxW in 0..1, H and W multiples of ``config.unshuffle``."""

    def __init__(self, config: StudentConfig = StudentConfig()) -> None:
        super().__init__()
        self.config = config
        c, s = config.channels, config.unshuffle
        self.head = nn.Conv2d(3 * s * s + config.conditions, c, 3, padding=1)
        self.body = nn.ModuleList(Block(c, config.negative_slope) for _ in range(config.blocks))
        self.tail = nn.Conv2d(c, 3 * s * s, 3, padding=1)
        # Start as the identity (the global skip alone): training then only has to add detail.
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def feature_channels(self) -> list[int]:
        """Channels of each tensor :meth:`features` returns (one per body block)."""
        return [self.config.channels] * self.config.blocks

    @property
    def context(self) -> int:
        """Pixels of input context each output pixel depends on, on each side (a safe upper bound).

        Every 3x3 conv at 1/s resolution reaches one coarse pixel (s fine pixels) further; the folding
        itself can reach up to s - 1 more.
        """
        s = self.config.unshuffle
        return (self.config.blocks + 2) * s + s - 1

    def _fold(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The head's input: the image folded to 1/s resolution, with ``cond`` (Bx``config.conditions``)
        as constant maps next to it."""
        z = F.pixel_unshuffle(x, self.config.unshuffle)
        if self.config.conditions:
            z = torch.cat([z, cond[:, :, None, None].to(z.dtype).expand(-1, -1, *z.shape[-2:])], dim=1)
        return z

    def forward_features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Output and the body features after each block (for distillation); ``cond`` as in :meth:`_fold`."""
        s = self.config.unshuffle
        h = _act(self.head(self._fold(x, cond)), self.config.negative_slope)
        feats = []
        for block in self.body:
            h = block(h)
            feats.append(h)
        return x + F.pixel_shuffle(self.tail(h), s), feats

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.forward_features(x, cond)[0]
        return self._infer(x, cond)

    def _infer(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The same computation as :meth:`forward_features`, in place where autograd is off.

        Why: at 40 channels the convs run near the CPU's peak, and the ReLUs, residual adds and the
        fresh tensor each one allocates cost a fifth of the time; in place they cost half as much. The
        result is bit-identical (``tests/test_models.py``); measured on a 1024x768 photo (2 cores,
        20 interleaved rounds, twice) the network runs 13 to 17 % faster.
        """
        s = self.config.unshuffle
        slope = self.config.negative_slope
        h = _act(self.head(self._fold(x, cond)), slope, inplace=True)
        for block in self.body:
            h.add_(block.mix(_act(block.spatial(h), slope, inplace=True)))
        return F.pixel_shuffle(self.tail(h), s).add_(x)


def narrowed(net: Student, stream: list[int], inner: list[list[int]]) -> Student:
    """A copy of ``net`` with fewer channels: the residual stream keeps the channels ``stream`` (the
    head's outputs, each block's 1x1 outputs, what the blocks and the tail read), block ``i`` keeps the
    inner channels ``inner[i]`` (its 3x3 conv's outputs, what its 1x1 conv reads). All lists have the
    new width. The copy computes exactly what ``net`` computes with the dropped channels zeroed: a start
    for a narrower (faster) student that fine-tuning then repairs, instead of a fresh one
    (``tools/prune.py``)."""
    width = len(stream)
    if len(inner) != len(net.body) or any(len(keep) != width for keep in inner):
        raise ValueError(f"need {len(net.body)} inner channel lists of {width} each")
    out = Student(StudentConfig(**{**net.config.to_dict(), "channels": width}))
    s = torch.tensor(stream)
    with torch.no_grad():
        out.head.weight.copy_(net.head.weight[s])
        out.head.bias.copy_(net.head.bias[s])
        for new, old, keep in zip(out.body, net.body, inner):
            k = torch.tensor(keep)
            new.spatial.weight.copy_(old.spatial.weight[k][:, s])
            new.spatial.bias.copy_(old.spatial.bias[k])
            new.mix.weight.copy_(old.mix.weight[s][:, k])
            new.mix.bias.copy_(old.mix.bias[s])
        out.tail.weight.copy_(net.tail.weight[:, s])
        out.tail.bias.copy_(net.tail.bias)
    return out
