"""The general student: one compact network for photos that are sharp, soft, upscaled, noisy or JPEG.

A network trained on one degradation treats every photo as that degradation and over-sharpens sharp
ones. This one is *told* the degradation, as SRMD does: four numbers in 0..1 (blur, scale, noise, JPEG;
see :func:`sharpkd.degrade.conditions`, all zero = a clean photo) enter as constant input maps next to
the folded image. The body is the student's (:mod:`sharpkd.models.student`), so it costs the same.

When nobody states the degradation (the default, "blind" mode), a small estimator guesses it from the
photo itself: a strided CNN with global average pooling, run on the most textured 128 px crops of the
image (flat sky says nothing about blur), their guesses averaged. The guess is made once per image,
before tiling, so every tile is restored with the same conditions and tiled output stays exactly equal
to the whole-image output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from sharpkd.models.student import Student, StudentConfig

N_CONDITIONS = 4
CROP = 128  # estimator crop size: the training patch size
MAX_CROPS = 8


@dataclass(frozen=True)
class GeneralConfig:
    channels: int = 48
    blocks: int = 8
    unshuffle: int = 4
    estimator_channels: int = 48

    def to_dict(self) -> dict:
        return asdict(self)


class Estimator(nn.Module):
    """Bx3xHxW (any size >= 16 px) -> Bx4 estimated conditions in 0..1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.ReLU(),  # full resolution: blur lives in the finest detail
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * c, N_CONDITIONS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).mean(dim=(2, 3))
        return torch.sigmoid(self.head(pooled))


def textured_crops(x: torch.Tensor, size: int = CROP, count: int = MAX_CROPS) -> torch.Tensor:
    """The ``count`` crops of ``size`` px (on a grid) of a 1x3xHxW image with the most fine detail
    (mean absolute Laplacian of the gray image); the whole image if it is smaller than one crop."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        return x
    gray = x.mean(dim=1, keepdim=True)
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=x.device, dtype=x.dtype)
    detail = F.conv2d(gray, lap[None, None]).abs()
    detail = F.pad(detail, (1, 1, 1, 1))
    ys = torch.linspace(0, h - size, max(1, h // size)).round().long().tolist()
    xs = torch.linspace(0, w - size, max(1, w // size)).round().long().tolist()
    corners = [(y, x0) for y in ys for x0 in xs]
    scores = torch.stack([detail[..., y : y + size, x0 : x0 + size].mean() for y, x0 in corners])
    best = scores.argsort(descending=True)[:count].tolist()
    return torch.cat([x[..., corners[i][0] : corners[i][0] + size, corners[i][1] : corners[i][1] + size] for i in best])


class General(nn.Module):
    """Input and output: Bx3xHxW in 0..1 (H, W multiples of ``config.unshuffle``); ``cond`` Bx4 or None
    (blind: estimated per image)."""

    def __init__(self, config: GeneralConfig = GeneralConfig()) -> None:
        super().__init__()
        self.config = config
        self.net = Student(StudentConfig(config.channels, config.blocks, config.unshuffle, conditions=N_CONDITIONS))
        self.estimator = Estimator(config.estimator_channels)

    @property
    def context(self) -> int:
        return self.net.context

    @property
    def feature_channels(self) -> list[int]:
        return self.net.feature_channels

    def estimate(self, x: torch.Tensor) -> torch.Tensor:
        """Bx4 conditions of each image of the batch, from its most textured crops."""
        return torch.cat([self.estimator(textured_crops(image[None])).mean(dim=0, keepdim=True) for image in x])

    def forward_features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if cond is None:
            cond = self.estimate(x)
        return self.net.forward_features(x, cond)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_features(x, cond)[0]
