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

A regression trained with L1 shrinks towards the common case, and slight blur is hard to see: measured
on the training photos, the raw blur guess for sigma 0.6 was 0.07 where the truth is 0.3, while sharp
photos stayed below 0.011. So after training the blur guess is *calibrated*: :func:`calibrate` measures
the median guess for a ladder of blurs on the training photos and stores the curve (guess -> truth) in
the ``blur_knots`` buffer; :meth:`General.estimate` maps guesses through it. Guesses up to what sharp
training photos produce map to 0, which keeps sharp photos untouched.

The scale guess, averaged over the crops, errs low on large smooth photos (an x4 upscale guessed x2.7):
a model with ``pooled_scale`` also guesses the scale from the crops' features pooled (a small MLP fitted
after training, :func:`fit_pooled_scale`), and where the crops already see an upscale that guess may
raise theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from sharpkd.models.cleanup import Cleanup, CleanupConfig, tensor_reader, through_knots
from sharpkd.models.student import Student, StudentConfig

N_CONDITIONS = 4
CROP = 128  # estimator crop size: the training patch size
MAX_CROPS = 8
MIN_STEP = 0.02
CLEAN_LEVEL = 0.01  # a condition below this counts as none; a photo with all four below is left alone
# The pooled scale guess (GeneralConfig.pooled_scale) may raise the scale only of a photo whose crops already
# guess at least this (an upscale of about 1.75x). Chosen on training photos (docs/model-card.md): let it
# raise any soft photo's scale and it tells pure 2x upscales and blurred photos an upscale they lack
POOLED_SCALE_FROM = 0.25
POOLED_HIDDEN = 32  # hidden units of the pooled scale head (a linear head erred twice as much: docs/model-card.md)
CALIBRATION_SIGMAS = (0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 1.75, 2.0)  # blur ladder of :func:`calibrate`


@dataclass(frozen=True)
class GeneralConfig:
    channels: int = 40
    blocks: int = 8
    unshuffle: int = 4
    estimator_channels: int = 48
    # The estimator's output: a sigmoid (False; the bundled weights) or a linear guess clamped to 0..1
    # (True). Measured: the sigmoid's logits for noise and JPEG sank to -1000 and below (to -2000 after more
    # training), where no gradient passes, so those guesses stayed exactly 0 whatever the photo.
    linear_estimate: bool = False
    negative_slope: float = 0.0  # of the network's ReLUs (see StudentConfig.negative_slope)
    # > 0: the model has a cleanup stage of this width for noise and JPEG (:mod:`sharpkd.models.cleanup`),
    # its network's ReLUs leaking with ``cleanup_negative_slope``
    cleanup_channels: int = 0
    cleanup_negative_slope: float = 0.1
    # True: the estimator has a second scale guess, a small MLP on the features pooled over all of a
    # photo's crops (fitted after training: :func:`fit_pooled_scale`, ``tools/fit_scale.py``); on a photo
    # whose crops see an upscale it raises their averaged scale guess, which errs low, to its own
    pooled_scale: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class Estimator(nn.Module):
    """Bx3xHxW (any size >= 16 px) -> Bx4 estimated conditions in 0..1.

    ``linear``: the head's output clamped to 0..1 instead of a sigmoid; training then puts its loss on the
    unclamped output (:meth:`for_loss`), whose gradient never vanishes (see ``GeneralConfig.linear_estimate``)."""

    def __init__(self, channels: int, linear: bool = False, pooled_scale: bool = False) -> None:
        super().__init__()
        c = channels
        self.linear = linear
        self.features = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.ReLU(),  # full resolution: blur lives in the finest detail
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * c, N_CONDITIONS)
        # the scale guessed from the features of all of a photo's crops together (GeneralConfig.pooled_scale)
        self.scale_head = (
            nn.Sequential(nn.Linear(2 * c, POOLED_HIDDEN), nn.ReLU(), nn.Linear(POOLED_HIDDEN, 1)) if pooled_scale else None
        )
        # (guess, truth) knots of the blur calibration; the identity until :func:`calibrate` runs
        knots = torch.linspace(0, 1, len(CALIBRATION_SIGMAS) + 2)
        self.register_buffer("blur_knots", torch.stack([knots, knots]))

    def calibrated(self, guess: torch.Tensor) -> torch.Tensor:
        """Bx4 raw guesses -> the same with the blur guess mapped through ``blur_knots``."""
        return torch.cat([through_knots(guess[:, 0], self.blur_knots)[:, None], guess[:, 1:]], dim=1)

    def fresh_head(self) -> None:
        """Zero the head (every guess 0): to train it anew on convolutions taken from another estimator."""
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def crop_features(self, x: torch.Tensor) -> torch.Tensor:
        """Bx3xhxw crops -> Bx2c: each crop's features averaged over its positions (what the heads see)."""
        return self.features(x).mean(dim=(2, 3))

    def _head_output(self, features: torch.Tensor) -> torch.Tensor:
        z = self.head(features)
        return z if self.linear else torch.sigmoid(z)

    def for_loss(self, x: torch.Tensor) -> torch.Tensor:
        """What training's loss compares with the truth: the unclamped guess (linear), or the sigmoid's."""
        return self._head_output(self.crop_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.for_loss(x).clamp(0, 1)

    def crops_guess(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`crop_features` of one photo's crops -> its raw guess (1x4: the crops' guesses averaged)."""
        return self._head_output(features).clamp(0, 1).mean(dim=0, keepdim=True)

    def pooled_scale_guess(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`crop_features` of one photo's crops -> the scale head's guess (1) from them pooled."""
        return self.scale_head(features.mean(dim=0, keepdim=True))[:, 0].clamp(0, 1)

    def guess(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One photo's crops (Nx3xhxw) -> its raw guess (1x4: the crops' guesses averaged) and its
        conditions (1x4: the blur guess calibrated; with a pooled scale head, on a photo whose crops guess
        a scale of at least ``POOLED_SCALE_FROM``, the scale raised to that head's guess from the crops'
        features pooled, where it is higher)."""
        features = self.crop_features(crops)
        raw = self.crops_guess(features)
        cond = self.calibrated(raw)
        if self.scale_head is not None and float(cond[0, 1]) >= POOLED_SCALE_FROM:
            cond[:, 1] = torch.maximum(cond[:, 1], self.pooled_scale_guess(features))
        return raw, cond


Reader = Callable[[int, int, int, int], torch.Tensor]  # (y0, y1, x0, x1) -> 1x3xhxw region of a photo


def select_crops(read: Reader, h: int, w: int, size: int = CROP, count: int = MAX_CROPS) -> torch.Tensor:
    """The ``count`` crops of ``size`` px (on a grid) of an ``h`` x ``w`` photo with the most fine
    detail (mean absolute Laplacian of the gray image, zero on the photo's border); the whole photo if
    it is smaller than one crop. The photo is read one row of crops at a time (with a pixel above and
    below), so a large photo is never held as floats at once."""
    if h < size or w < size:
        return read(0, h, 0, w)
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    ys = torch.linspace(0, h - size, max(1, h // size)).round().long().tolist()
    xs = torch.linspace(0, w - size, max(1, w // size)).round().long().tolist()
    scores, corners = [], []
    for y in ys:
        a, b = max(y - 1, 0), min(y + size + 1, h)
        strip = read(a, b, 0, w)
        gray = strip.mean(dim=1, keepdim=True)
        detail = F.pad(F.conv2d(gray, lap.to(gray)).abs(), (1, 1, 1, 1))[0, 0, y - a : y - a + size]
        # column sums once, then each crop's mean is a difference of running sums
        cols = F.pad(detail.double().sum(dim=0).cumsum(0), (1, 0))
        for x0 in xs:
            scores.append(float(cols[x0 + size] - cols[x0]) / (size * size))
            corners.append((y, x0))
    best = torch.tensor(scores).argsort(descending=True, stable=True)[:count].tolist()
    return torch.cat([read(corners[i][0], corners[i][0] + size, corners[i][1], corners[i][1] + size) for i in best])


def textured_crops(x: torch.Tensor, size: int = CROP, count: int = MAX_CROPS) -> torch.Tensor:
    """:func:`select_crops` of a 1x3xHxW tensor."""
    return select_crops(tensor_reader(x), x.shape[-2], x.shape[-1], size, count)


class Told(nn.Module):
    """A general model's network with fixed conditions ``cond`` (1x4), the estimator bypassed: what the
    network does when told the degradation (the sweep's ``--told``; the network's speed in benchmarks)."""

    def __init__(self, net: Student, cond: torch.Tensor) -> None:
        super().__init__()
        self.net, self.cond = net, cond

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.cond.to(x.device).expand(len(x), -1))


class General(nn.Module):
    """Input and output: Bx3xHxW in 0..1 (H, W multiples of ``config.unshuffle``); ``cond`` Bx4 or None
    (blind: estimated per image)."""

    def __init__(self, config: GeneralConfig = GeneralConfig()) -> None:
        super().__init__()
        self.config = config
        self.net = Student(StudentConfig(config.channels, config.blocks, config.unshuffle, N_CONDITIONS, config.negative_slope))
        self.estimator = Estimator(config.estimator_channels, config.linear_estimate, config.pooled_scale)
        self.cleanup = (
            Cleanup(CleanupConfig(config.cleanup_channels, config.blocks, config.unshuffle, config.cleanup_negative_slope))
            if config.cleanup_channels else None
        )

    @property
    def context(self) -> int:
        return self.net.context

    @property
    def feature_channels(self) -> list[int]:
        return self.net.feature_channels

    def estimate(self, x: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """Bx4 conditions of each image of the batch, from its most textured crops (the raw guess if ``raw``)."""
        return torch.cat([self.estimator.guess(textured_crops(image[None]))[0 if raw else 1] for image in x])

    def guess_photo(self, read: Reader, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw guess and the conditions (each 1x4, :meth:`Estimator.guess`) of one photo given by a
        region reader (see :func:`select_crops`)."""
        return self.estimator.guess(select_crops(read, h, w).to(next(self.parameters()).device))

    def forward_features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if cond is None:
            cond = self.estimate(x)
        return self.net.forward_features(x, cond)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x, self.estimate(x) if cond is None else cond)


@torch.no_grad()
def calibrate(model: General, photos: list, device: str = "cpu") -> list[tuple[float, float]]:
    """Fit ``model.estimator.blur_knots`` on sharp ``photos`` (HxWx3 uint8 arrays, training photos only).

    Knots: (the largest guess any sharp photo gives -> 0), then for each sigma of
    :data:`CALIBRATION_SIGMAS` (median guess -> the true blur condition), then (1 -> 1). A sigma whose
    median guess is not ``MIN_STEP`` above the previous knot cannot be told apart from it and adds a flat
    knot instead, so sharp photos keep mapping to 0. Returns the knots.
    """
    import numpy as np

    from sharpkd.degrade import Degradation, apply, conditions
    from sharpkd.pairs import to_tensor

    def guesses(d: Degradation) -> np.ndarray:
        rng = np.random.default_rng(0)
        out = []
        for photo in photos:
            lq = photo if d == Degradation() else apply(photo, d, rng)
            out.append(float(model.estimate(to_tensor(lq).to(device), raw=True)[0, 0]))
        return np.array(out)

    knots = [(float(guesses(Degradation()).max()), 0.0)]
    for sigma in CALIBRATION_SIGMAS:
        x, y = float(np.median(guesses(Degradation(sigma, sigma)))), conditions(Degradation(sigma, sigma))[0]
        if x < knots[-1][0] + MIN_STEP:  # not told apart from the blur below it (or from sharp): flat
            x, y = knots[-1][0] + 1e-3, knots[-1][1]
        knots.append((x, y))
    knots.append((max(1.0, knots[-1][0] + 1e-3), 1.0))
    xs, ys = [x for x, _ in knots], [y for _, y in knots]
    model.estimator.blur_knots.copy_(torch.tensor([xs, ys], dtype=torch.float32))
    return list(zip(xs, ys))


# the degradations :func:`fit_pooled_scale` fits on: sharp, blurred, upscaled x2/x3/x4 with a few blurs
SCALE_LADDER = (  # (blur sigma, scale factor)
    (0.0, 1.0), (0.6, 1.0), (0.8, 1.0), (1.0, 1.0), (0.0, 2.0), (1.0, 2.0), (1.5, 2.0),
    (0.5, 3.0), (1.0, 3.0), (0.5, 4.0), (1.0, 4.0), (1.6, 4.0),
)


def fit_pooled_scale(model: General, photos: list, steps: int = 2000, device: str = "cpu") -> dict:
    """Fit ``model.estimator.scale_head`` (a model with ``pooled_scale``) on ``photos`` (HxWx3 uint8, training
    photos only), each degraded every way of :data:`SCALE_LADDER`: the head learns the true scale condition
    from the estimator's features pooled over the photo's crops, as :meth:`Estimator.guess` takes them
    (mean squared error of its clamped guess; ``steps`` full-batch Adam steps, learning rate 0.01, weight
    decay 0.001, on standardised features, seed 0; the standardisation is then folded into the first
    layer). Returns a record: per ladder rung the true scale and the fitted head's 10 / 50 / 90 % guesses
    against the crop-averaged ones."""
    import numpy as np

    from sharpkd.degrade import Degradation, apply, conditions
    from sharpkd.pairs import to_tensor

    head = model.estimator.scale_head
    if head is None:
        raise ValueError("the model has no pooled scale head (GeneralConfig.pooled_scale)")
    feats, truth, old, rung = [], [], [], []
    with torch.no_grad():
        for i, (sigma, scale) in enumerate(SCALE_LADDER):
            d = Degradation(sigma, sigma, scale=scale)
            rng = np.random.default_rng(0)
            for photo in photos:
                lq = photo if d == Degradation() else apply(photo, d, rng)
                features = model.estimator.crop_features(textured_crops(to_tensor(lq).to(device)))
                feats.append(features.mean(dim=0).cpu())
                old.append(float(model.estimator.crops_guess(features)[0, 1]))
                truth.append(conditions(d)[1])
                rung.append(i)
    f, y = torch.stack(feats).double(), torch.tensor(truth)
    mu, sd = f.mean(dim=0), f.std(dim=0) + 1e-8
    z = ((f - mu) / sd).float()
    torch.manual_seed(0)
    fitted = nn.Sequential(nn.Linear(f.shape[1], POOLED_HIDDEN), nn.ReLU(), nn.Linear(POOLED_HIDDEN, 1))
    opt = torch.optim.Adam(fitted.parameters(), lr=0.01, weight_decay=0.001)
    for _ in range(steps):
        opt.zero_grad()
        ((fitted(z)[:, 0].clamp(0, 1) - y) ** 2).mean().backward()
        opt.step()
    with torch.no_grad():  # fold the standardisation into the first layer
        first, last = fitted[0], fitted[2]
        w = first.weight.double() / sd
        head[0].weight.copy_(w.to(head[0].weight))
        head[0].bias.copy_((first.bias.double() - w @ mu).to(head[0].bias))
        head[2].load_state_dict(last.state_dict())
        guess = head(f.to(head[0].weight)).clamp(0, 1)[:, 0].double()
    y, old = y.double(), torch.tensor(old, dtype=torch.float64)
    record = {"photos": len(photos), "steps": steps, "rmse": round(float(((guess - y) ** 2).mean().sqrt()), 4),
              "rmse_before": round(float(((old - y) ** 2).mean().sqrt()), 4), "rungs": []}
    q = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    for i, (sigma, scale) in enumerate(SCALE_LADDER):
        sel = torch.tensor(rung) == i
        record["rungs"].append({
            "blur": sigma, "scale": scale, "truth": round(truth[sel.nonzero()[0, 0]], 3),
            "pooled": [round(float(v), 3) for v in torch.quantile(guess[sel], q)],
            "crops": [round(float(v), 3) for v in torch.quantile(old[sel], q)],
        })
    return record
