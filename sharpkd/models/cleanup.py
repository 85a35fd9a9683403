"""The general model's cleanup stage: finds noise and JPEG blocking in a photo and removes them.

Why a stage of its own: the general model's estimator never learned to see noise (its guess stays 0 on
noise sigma 5), and its network, trained on the whole degradation range, learned almost nothing for noise
or JPEG alone (told the truth: +0.06 / +0.09 dB after a stage of its own; docs/model-card.md). A network
trained on noise and JPEG alone, every crop told the truth, learns them quickly; and both are easy to
*measure* without learning anything:

- **noise**: the finest diagonal Haar detail (``(a - b - c + d) / 2`` of each 2x2 cell, per colour) of a
  clean photo is near zero in its flat parts; Gaussian noise of sigma s gives it an RMS of s everywhere.
  The flattest 10 % of 16 px blocks by that RMS are the ones measured. But a photo with fine texture
  everywhere (foliage, fabric, small photos) has no flat blocks, and its texture reads as noise
  (measured on training photos: up to 10 "sigma" on sharp photos, which the noise cleanup then smeared).
  White noise has the same energy at every scale of an orthonormal Haar transform, natural texture
  much more at the next coarser scale: so the statistic subtracts :data:`TEXTURE_SHARE` of the coarser
  diagonal detail's energy (on the half-size image's 2x2 cells) in the same blocks,
  ``sqrt(max(0, e1 - r * e2) / (1 - r))``, which keeps white noise and removes most texture.
- **JPEG**: JPEG quantises 8x8 blocks on their own, so the luma steps across block borders (between
  columns 7 and 8 of each block) grow against the steps inside a block. The statistic compares them with
  the steps between columns 3 and 4, which sit in the same phase of any x2 or x4 upscale (an upscaled
  photo has its own period-4 pattern): ``step(7|8) / step(3|4) - 1``, rows and columns averaged.

Each statistic maps to the condition the network is told (noise sigma / 10, (100 - quality) / 70)
through knots measured on the training photos (:func:`calibrate`), the same way as the blur estimate:
what sharp training photos reach maps to 0, so a photo is cleaned only when it is measurably noisier
or blockier than clean photos are. The statistics are taken on bands of whole rows, at most
:data:`BANDS` of :data:`BAND` rows each, starting on the 8 px grid (JPEG's blocks start at the photo's
top-left corner), so a 12 MP photo costs a few tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sharpkd.models.student import Student, StudentConfig

# a photo smaller than this on either side is not measured (Stats 0, 0): a 16 x 16 photo has four 8 px
# blocks, whose steps read as JPEG blocking (1.29 on a noisy, never compressed crop) and one 16 px block
# for the noise; every training and validation photo is at least 128 px
MIN_SIDE = 64
BAND = 64  # rows per band (a multiple of 16: whole 16 px noise blocks, whole 8 px JPEG blocks)
BANDS = 8  # at most this many bands, spread over the photo's height
NOISE_PERCENTILE = 0.10
# share of the coarser scale's diagonal energy that texture leaves at the finest scale (Haar, orthonormal):
# chosen on training photos (every 4th, 207; benchmarks/noise_measure.py): sharp photos measure at most 1.1
# with it, noise sigma 5 3.9 (median), and 9 of the 14 textured photos that noise cleanup made worse read
# 0 under noise sigma 5 (at 0.2: 6)
TEXTURE_SHARE = 0.3
# the check of a noise cleanup (:func:`texture_ratio`): crops, their size and context, and the largest
# ratio at which noise cleanup goes ahead
CHECK_CROPS = 16
CHECK_SIZE = 128
CHECK_MARGIN = 16
MAX_TEXTURE_RATIO = 1.0
LUMA = (0.299, 0.587, 0.114)
# The cleanup output is the mean of the network's outputs on the photo and on it mirrored left to right
# (mirrored back; a "self-ensemble", as EDSR+ does with eight flips and rotations): what the network gets
# wrong in one orientation it partly gets right in the other. Chosen on training photos (every 8th: 97
# natural, 8 sun80; docs/model-card.md, "Two passes of the cleanup network"), passes 1 / 2 / 4, natural
# part: noise 5 +2.73 / +2.84 / +2.90 dB, noise 2 +0.99 / +1.07 / +1.11, JPEG q40 +0.34 / +0.35 / +0.36
# (`benchmarks/sweep.py --train-every 8 --cleanup-passes 1 2 4`);
# the second pass buys most, passes 3 and 4 half as much again for twice the time. Each pass is one run of
# the network, on the photos the stage cleans only. Its check (:func:`texture_ratio`) runs one pass.
PASSES = 2
MIRRORS = ((), (-1,), (-2,), (-2, -1))  # the photo as it is, left-right, upside down, both
# (statistic, condition) knots per kind, first to last; the identity until :func:`calibrate` runs
KNOTS = 8
NOISE_LADDER = (2.0, 3.0, 5.0, 8.0, 10.0)  # sigma on 0..255
JPEG_LADDER = (90, 70, 55, 40, 30)  # quality

Reader = Callable[[int, int, int, int], torch.Tensor]  # (y0, y1, x0, x1) -> 1x3xhxw in 0..1


@dataclass(frozen=True)
class Stats:
    """The raw measurements of one photo (see the module's docstring)."""

    noise: float  # ~ Gaussian noise sigma on 0..255
    blocking: float  # 0 for a photo without JPEG's 8 px grid; ~0.6 at quality 40


@dataclass(frozen=True)
class Decision:
    """What the cleanup stage measured on a photo and tells its network (:meth:`Cleanup.decide`)."""

    stats: Stats
    noise: float
    jpeg: float
    texture_ratio: float | None  # of the noise cleanup, where it was checked

    def note(self) -> str:
        ratio = "" if self.texture_ratio is None else f", texture ratio {self.texture_ratio:.2f}"
        dropped = "; noise left: its cleanup would change texture more than flat parts" if self.texture_ratio is not None and self.noise == 0 else ""
        return f"measured noise {self.stats.noise:.2f}, blocking {self.stats.blocking:.3f}{ratio}{dropped}"


def band_rows(h: int) -> list[int]:
    """First rows of the bands a photo of height ``h`` is measured on (on the 8 px grid)."""
    if h <= BAND:
        return [0]
    count = min(BANDS, h // BAND)
    starts = torch.linspace(0, h - BAND, count).tolist()
    return sorted({int(y) // 8 * 8 for y in starts})


def measure(read: Reader, h: int, w: int, texture_share: float = TEXTURE_SHARE) -> Stats:
    """:class:`Stats` of an ``h`` x ``w`` photo given by a region reader (values 0..1); ``texture_share``:
    see :data:`TEXTURE_SHARE` (0: the finest detail alone, as before it). A photo smaller than
    :data:`MIN_SIDE` on either side measures (0, 0)."""
    if min(h, w) < MIN_SIDE:
        return Stats(0.0, 0.0)
    fine, coarse = [], []  # per 16 px block: mean square of the finest / the next diagonal Haar detail
    across, down = torch.zeros(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    for y in band_rows(h):
        x = read(y, min(y + BAND, h), 0, w).float() * 255.0
        hh, ww = x.shape[-2] // 16 * 16, x.shape[-1] // 16 * 16
        if hh < 16 or ww < 16:
            continue
        average, diag = _haar(x[0, :, :hh, :ww])
        fine.append(_block_energy(diag, 8))
        coarse.append(_block_energy(_haar(average)[1], 4))
        luma = _luma(x)
        across += _phase_steps(luma.diff(dim=1).abs().mean(dim=0).double())
        down += _phase_steps(luma.diff(dim=0).abs().mean(dim=1).double())
    if not fine:
        return Stats(0.0, 0.0)
    e1, e2 = torch.cat(fine).double(), torch.cat(coarse).double()
    flat = e1 <= torch.quantile(e1, NOISE_PERCENTILE)
    white = (e1[flat].mean() - texture_share * e2[flat].mean()) / (1 - texture_share)
    blocking = [float(p[7] / p[3] - 1.0) if p[3] > 0 else 0.0 for p in (across, down)]
    return Stats(float(white.clamp(min=0).sqrt()), max(0.0, sum(blocking) / 2))


def texture_ratio(restore: Callable[[torch.Tensor], torch.Tensor], read: Reader, h: int, w: int) -> float:
    """How much more a restoration changes a photo's textured parts than its flat parts: the RMS of what
    ``restore`` (1x3xhxw -> same, values 0..1) takes away, in the most textured fifth of 16 px blocks
    over the flattest fifth, on up to :data:`CHECK_CROPS` crops of :data:`CHECK_SIZE` px spread over the
    photo (each restored with :data:`CHECK_MARGIN` px of context, which is then cut off).

    Why: removing noise takes about the same out of flat and textured parts (a ratio near or below 1);
    a restoration that smooths or redraws texture takes out more where the texture is. Measured with the
    cleanup network on 207 training photos: where noise cleanup made a noise-5 photo worse, the ratio was
    above 1 (1.08 to 8.3; the photos it helped: median 0.88); told a light noise (sigma 2), the network
    hardly touched flat parts and changed texture (ratios 2.3 to 10) and made 47 of 127 photos worse.
    """
    size, margin = CHECK_SIZE, CHECK_MARGIN
    side = max(1, round(CHECK_CROPS**0.5))
    ys = sorted({int(v) for v in torch.linspace(0, max(0, h - size), side).tolist()})
    xs = sorted({int(v) for v in torch.linspace(0, max(0, w - size), side).tolist()})
    removed, texture = [], []
    for y in ys:
        for x in xs:
            y0, y1, x0, x1 = max(0, y - margin), min(h, y + size + margin), max(0, x - margin), min(w, x + size + margin)
            crop = read(y0, y1, x0, x1).float()
            pad_h, pad_w = -crop.shape[-2] % 8, -crop.shape[-1] % 8  # the network folds by 4
            out = restore(F.pad(crop, (0, pad_w, 0, pad_h), mode="replicate"))[..., : crop.shape[-2], : crop.shape[-1]].clamp(0, 1)
            inner = (..., slice(y - y0, min(y + size, h) - y0), slice(x - x0, min(x + size, w) - x0))
            lum_in, lum_out = (_luma(t) * 255.0 for t in (crop[inner], out[inner]))
            hh, ww = lum_out.shape[0] // 16 * 16, lum_out.shape[1] // 16 * 16
            if hh < 16 or ww < 16:
                continue
            gradient = torch.zeros(hh, ww)
            gradient[:, :-1] += lum_out[:hh, :ww].diff(dim=1).square()
            gradient[:-1] += lum_out[:hh, :ww].diff(dim=0).square()
            removed.append(_block_energy((lum_in - lum_out)[None, :hh, :ww], 16))
            texture.append(_block_energy(gradient.sqrt()[None], 16))
    if not removed:
        return 0.0
    order = torch.cat(texture).argsort()
    r = torch.cat(removed)[order]
    fifth = max(1, len(r) // 5)
    return float((r[-fifth:].mean() / r[:fifth].mean().clamp(min=1e-12)).sqrt())


def mirror_mean(restore: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, passes: int = PASSES) -> torch.Tensor:
    """The mean of ``restore`` (Bx3xhxw -> same) over the first ``passes`` (1 to 4) of :data:`MIRRORS` of
    ``x``, each output mirrored back. Exact for tiles: a tile's mirror is the mirror of its region."""
    if not 1 <= passes <= len(MIRRORS):
        raise ValueError(f"passes must be 1 to {len(MIRRORS)}, got {passes}")
    out = restore(x)
    for dims in MIRRORS[1:passes]:
        out = out + restore(x.flip(dims)).flip(dims)
    return out / passes


def _luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (:data:`LUMA`) of a 1x3xHxW tensor, as HxW."""
    return sum(k * x[0, i] for i, k in enumerate(LUMA))


def _haar(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal 2x2 Haar of Cx2Hx2W: the average ``(a + b + c + d) / 2`` and the diagonal detail
    ``(a - b - c + d) / 2`` of each cell (white noise of sigma s: both have sigma s)."""
    a, b, c_, d = c[:, 0::2, 0::2], c[:, 0::2, 1::2], c[:, 1::2, 0::2], c[:, 1::2, 1::2]
    return (a + b + c_ + d) / 2, (a - b - c_ + d) / 2


def _block_energy(detail: torch.Tensor, size: int) -> torch.Tensor:
    """Mean square of CxHxW ``detail`` over colours and ``size`` x ``size`` blocks, flattened."""
    c, h, w = detail.shape
    return detail.reshape(c, h // size, size, w // size, size).square().mean(dim=(0, 2, 4)).flatten()


def tensor_reader(x: torch.Tensor) -> Reader:
    """The region reader of a 1x3xHxW tensor: what :func:`measure` and :func:`texture_ratio` read."""
    return lambda y0, y1, x0, x1: x[..., y0:y1, x0:x1]


def measure_tensor(x: torch.Tensor, texture_share: float = TEXTURE_SHARE) -> Stats:
    """:func:`measure` of a 1x3xHxW tensor in 0..1."""
    return measure(tensor_reader(x), x.shape[-2], x.shape[-1], texture_share)


def _phase_steps(steps: torch.Tensor) -> torch.Tensor:
    """Mean step per phase (index mod 8) of a 1-D profile of absolute steps; step ``i`` lies between
    pixels ``i`` and ``i + 1``, so phase 7 is the border between two 8 px blocks."""
    n = len(steps) // 8 * 8
    if n == 0:
        return torch.zeros(8, dtype=torch.float64)
    return steps[:n].reshape(-1, 8).mean(dim=0)


def through_knots(values: torch.Tensor, knots: torch.Tensor) -> torch.Tensor:
    """``values`` (1-D) through piecewise-linear (value, condition) ``knots`` (2xK, values strictly
    rising), held at the ends; computed in ``values``' dtype. The blur calibration of the general model's
    estimator and the cleanup stage's knots both map this way."""
    xs, ys = knots.to(values.dtype)
    v = values.clamp(float(xs[0]), float(xs[-1])).contiguous()
    i = torch.searchsorted(xs, v).clamp(1, len(xs) - 1)
    t = (v - xs[i - 1]) / (xs[i] - xs[i - 1])
    return ys[i - 1] + t * (ys[i] - ys[i - 1])


def interpolate(x: float, knots: torch.Tensor) -> float:
    """One number through ``knots`` (:func:`through_knots`, in double precision)."""
    return float(through_knots(torch.tensor([x], dtype=torch.float64), knots)[0])


@dataclass(frozen=True)
class CleanupConfig:
    channels: int = 40
    blocks: int = 8
    unshuffle: int = 4
    negative_slope: float = 0.1


class Cleanup(nn.Module):
    """The cleanup stage: ``net`` (a student told four conditions, of which it is given noise and JPEG:
    blur and scale stay 0) and the ``knots`` (2 kinds x (statistic, condition) x :data:`KNOTS`) that turn
    :func:`measure`'s statistics into those conditions."""

    def __init__(self, config: CleanupConfig = CleanupConfig()) -> None:
        super().__init__()
        self.config = config
        self.net = Student(StudentConfig(config.channels, config.blocks, config.unshuffle, 4, config.negative_slope))
        ramp = torch.linspace(0, 1, KNOTS)
        identity = torch.stack([ramp * 10, ramp])  # noise: sigma 10 -> 1; blocking 1 -> 1 is set by calibrate
        self.register_buffer("knots", torch.stack([identity, torch.stack([ramp, ramp])]))
        # the largest raw blur guess of the general model's estimator at which the stage still runs: a
        # photo a little soft (calibrated to blur 0, but its raw guess above this) is left alone, since
        # on such a photo a JPEG grid of its own still measures as blocking after the blur, and removing
        # it takes detail too (measured: blur 0.6 on very blocky photos). 1: no such limit.
        self.register_buffer("max_raw_blur", torch.tensor(1.0))
        self.passes = PASSES  # of the network per cleanup (:func:`mirror_mean`); not saved with the weights

    @property
    def context(self) -> int:
        return self.net.context

    def conditions(self, stats: Stats) -> tuple[float, float]:
        """(noise, JPEG) conditions in 0..1 for ``stats``."""
        return interpolate(stats.noise, self.knots[0]), interpolate(stats.blocking, self.knots[1])

    @torch.no_grad()
    def decide(self, read: Reader, h: int, w: int, clean_level: float, max_ratio: float | None = None) -> Decision:
        """Measure a photo and decide what to tell the network: the knots' conditions, except that noise
        cleanup (a noise condition of at least ``clean_level``) is dropped where :func:`texture_ratio`
        finds that it would take more out of the photo's texture than out of its flat parts (a ratio
        above ``max_ratio``, default :data:`MAX_TEXTURE_RATIO`)."""
        stats = measure(read, h, w)
        noise, jpeg = self.conditions(stats)
        ratio = None
        if noise >= clean_level:
            device = self.knots.device
            ratio = texture_ratio(lambda t: self(t.to(device), noise, 0.0, passes=1).cpu(), read, h, w)
            if ratio > (MAX_TEXTURE_RATIO if max_ratio is None else max_ratio):
                noise = 0.0
        return Decision(stats, noise, jpeg, ratio)

    def forward(self, x: torch.Tensor, noise: float, jpeg: float, passes: int | None = None) -> torch.Tensor:
        """``x`` cleaned, the network told ``noise`` and ``jpeg``: the mean of ``passes`` runs (default
        ``self.passes``; :func:`mirror_mean`)."""
        cond = torch.tensor([[0.0, 0.0, noise, jpeg]], device=x.device).expand(len(x), -1)
        return mirror_mean(lambda t: self.net(t, cond), x, self.passes if passes is None else passes)


class ToldCleanup(nn.Module):
    """A cleanup stage told fixed conditions, as one module (Bx3xhxw -> cleaned): what the measuring tools
    run through ``enhance`` to see what the stage does when told the truth."""

    def __init__(self, cleanup: Cleanup, noise: float, jpeg: float) -> None:
        super().__init__()
        self.cleanup, self.noise, self.jpeg = cleanup, noise, jpeg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cleanup(x, self.noise, self.jpeg)


def ladder_knots(sharp: list[float], ladder: list[tuple[float, float]], zero_quantile: float, scale: float) -> torch.Tensor:
    """2x:data:`KNOTS` knots from the statistics of sharp photos and a ladder of (median statistic,
    true condition), rising: the ``zero_quantile`` of the sharp photos' statistics maps to 0, each rung
    to ``scale`` times its condition (a rung not above the one below it is dropped), the rest holds the
    last rung's condition."""
    zero = float(torch.quantile(torch.tensor(sharp, dtype=torch.float64), zero_quantile))
    xs, ys = [zero], [0.0]
    for x, y in ladder:
        if x > xs[-1] + 1e-6:
            xs.append(x)
            ys.append(y * scale)
    while len(xs) < KNOTS:
        xs.append(xs[-1] + 1e-3)
        ys.append(ys[-1])
    return torch.tensor([xs[:KNOTS], ys[:KNOTS]], dtype=torch.float32)


def fitted_knots(info: dict) -> torch.Tensor:
    """2x2x:data:`KNOTS` knots from what :func:`calibrate` recorded (``info``: its statistics of the sharp
    photos and ladders, with the ``zero_quantile`` and ``scale`` to use; ``noise_scale``, if given, for
    the noise knots instead: 0 turns noise cleanup off)."""
    noise_scale = info.get("noise_scale", info["scale"])
    return torch.stack([
        ladder_knots(info["sharp_noise"], sorted(map(tuple, info["noise_ladder"])), info["zero_quantile"], noise_scale),
        ladder_knots(info["sharp_blocking"], sorted(map(tuple, info["jpeg_ladder"])), info["zero_quantile"], info["scale"]),
    ])


@torch.no_grad()
def calibrate(cleanup: Cleanup, photos: list, zero_quantile: float = 0.95, scale: float = 1.0) -> dict:
    """Fit ``cleanup.knots`` on sharp training ``photos`` (HxWx3 uint8): the statistics of the photos
    as they are, and the median statistic of each rung of :data:`NOISE_LADDER` / :data:`JPEG_LADDER`
    (see :func:`ladder_knots`). Returns what was measured and the knots."""
    import numpy as np

    from sharpkd.degrade import Degradation, apply, conditions
    from sharpkd.pairs import to_tensor

    def stats(d: Degradation) -> list[Stats]:
        rng = np.random.default_rng(0)
        out = []
        for photo in photos:
            out.append(measure_tensor(to_tensor(photo if d == Degradation() else apply(photo, d, rng))))
        return out

    sharp = stats(Degradation())
    info = {
        "photos": len(photos), "zero_quantile": zero_quantile, "scale": scale,
        "noise_ladder": [(float(np.median([s.noise for s in stats(Degradation(noise=n))])), conditions(Degradation(noise=n))[2]) for n in NOISE_LADDER],
        "jpeg_ladder": [(float(np.median([s.blocking for s in stats(Degradation(jpeg=q))])), conditions(Degradation(jpeg=q))[3]) for q in JPEG_LADDER],
        "sharp_noise": [round(s.noise, 4) for s in sharp], "sharp_blocking": [round(s.blocking, 4) for s in sharp],
    }
    knots = fitted_knots(info)
    cleanup.knots.copy_(knots)
    return info | {"knots": [[[round(v, 4) for v in row] for row in kind] for kind in knots.tolist()]}

