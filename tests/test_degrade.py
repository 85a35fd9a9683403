import numpy as np
import pytest
import skimage.data
import skimage.filters
from PIL import Image

from sharpkd.degrade import CANONICAL, Recipe, degrade, gaussian_blur


def reference(hr, sigma, scale):
    """The recipe written out with scikit-image and Pillow directly."""
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    hr = hr[:h, :w]
    blurred = skimage.filters.gaussian(hr.astype(np.float64), sigma=sigma, truncate=3.0, mode="reflect", channel_axis=-1, preserve_range=True)
    blurred = np.clip(np.round(blurred), 0, 255).astype(np.uint8)
    small = Image.fromarray(blurred).resize((w // scale, h // scale), Image.BICUBIC)
    return hr, np.asarray(small.resize((w, h), Image.BICUBIC))


@pytest.mark.parametrize("sigma,scale", [(1.0, 4), (0.6, 2), (1.6, 3)])
def test_matches_scikit_image_and_pillow(sigma, scale):
    hr = skimage.data.astronaut()[:203, :157]
    got_hr, got_lq = degrade(hr, Recipe(sigma=sigma, scale=scale))
    want_hr, want_lq = reference(hr, sigma, scale)
    assert got_hr.shape == want_hr.shape == (200 if scale == 4 else 203 // scale * scale, 157 // scale * scale, 3)
    np.testing.assert_array_equal(got_hr, want_hr)
    np.testing.assert_array_equal(got_lq, want_lq)


def test_canonical_recipe_values():
    assert (CANONICAL.sigma, CANONICAL.scale, CANONICAL.truncate) == (1.0, 4, 3.0)


def test_blur_zero_sigma_is_identity():
    a = skimage.data.coffee()[:20, :30]
    np.testing.assert_array_equal(gaussian_blur(a, 0), a)


def test_degrade_changes_the_image_and_rejects_bad_input():
    hr = skimage.data.astronaut()[100:228, 150:278]
    _, lq = degrade(hr)
    assert np.abs(lq.astype(int) - hr).mean() > 2
    with pytest.raises(ValueError, match="uint8"):
        degrade(hr.astype(np.float32))
    with pytest.raises(ValueError, match="smaller than the scale"):
        degrade(hr[:3, :3])
