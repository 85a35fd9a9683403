"""The classical baseline: unsharp mask and its tuning."""

import numpy as np
import skimage.data

from sharpkd import metrics
from sharpkd.classical import UnsharpMask, tune
from sharpkd.degrade import degrade
from sharpkd.pairs import Pair


def test_zero_amount_is_identity_and_positive_amount_adds_contrast():
    img = skimage.data.coffee()[:64, :64]
    np.testing.assert_array_equal(UnsharpMask(1.0, 0.0)(img), img)
    sharpened = UnsharpMask(1.0, 1.0)(img)
    assert sharpened.dtype == np.uint8 and sharpened.astype(float).std() > img.astype(float).std()


def test_tuning_picks_the_best_grid_point_and_it_helps():
    pairs = [Pair(n, *degrade(np.ascontiguousarray(getattr(skimage.data, n)()[:128, :128]))) for n in ("astronaut", "chelsea")]
    usm, scores = tune(pairs, radii=(0.5, 2.0), amounts=(0.0, 1.0), crop=128)
    assert len(scores) == 4 and scores[f"{usm.radius},{usm.amount}"] == max(scores.values())
    assert usm.amount > 0  # on blurred photos, some sharpening beats none
    assert np.mean([metrics.psnr(usm(p.lq), p.hr) for p in pairs]) > np.mean([metrics.psnr(p.lq, p.hr) for p in pairs])
