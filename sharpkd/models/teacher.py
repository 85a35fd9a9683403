"""The teacher: a deep, wide residual CNN (EDSR-style blocks) at 1/4 resolution.

It follows the student's layout (pixel-unshuffle x4, residual body, pixel-shuffle, global skip) so that
both see the same coarse grid and their features can be compared position by position, but each block is
two 3x3 convs and the body is much wider and deeper: about 10x the student's compute. Residual scaling
(0.1 per block, as EDSR) keeps the deep body stable under Adam without normalisation layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class TeacherConfig:
    channels: int = 128
    blocks: int = 12
    unshuffle: int = 4
    res_scale: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class Block(nn.Module):
    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv2(F.relu(self.conv1(x)))


class Teacher(nn.Module):
    """Input and output: Bx3xHxW in 0..1, H and W multiples of ``config.unshuffle``."""

    def __init__(self, config: TeacherConfig = TeacherConfig()) -> None:
        super().__init__()
        self.config = config
        c, s = config.channels, config.unshuffle
        self.head = nn.Conv2d(3 * s * s, c, 3, padding=1)
        self.body = nn.ModuleList(Block(c, config.res_scale) for _ in range(config.blocks))
        self.tail = nn.Conv2d(c, 3 * s * s, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # start as the identity, as the student does
        nn.init.zeros_(self.tail.bias)

    @property
    def feature_channels(self) -> list[int]:
        return [self.config.channels] * self.config.blocks

    @property
    def context(self) -> int:
        """Input context on each side of an output pixel (safe upper bound): two 3x3 convs per block."""
        s = self.config.unshuffle
        return (2 * self.config.blocks + 2) * s + s - 1

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        s = self.config.unshuffle
        h = self.head(F.pixel_unshuffle(x, s))
        feats = []
        for block in self.body:
            h = block(h)
            feats.append(h)
        return x + F.pixel_shuffle(self.tail(h), s), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.forward_features(x)[0]
        # without autograd, in place: the same result, faster (see ``Student._infer``)
        s = self.config.unshuffle
        h = self.head(F.pixel_unshuffle(x, s))
        for block in self.body:
            h.add_(block.conv2(block.conv1(h).relu_()), alpha=block.res_scale)
        return F.pixel_shuffle(self.tail(h), s).add_(x)
