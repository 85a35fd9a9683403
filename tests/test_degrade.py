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


def test_canonical_recipe_is_one_point_of_the_range():
    from sharpkd.degrade import Degradation, apply

    hr = skimage.data.coffee()[:200, :240]
    np.testing.assert_array_equal(apply(hr, Degradation.of(CANONICAL)), degrade(hr)[1])
    np.testing.assert_array_equal(apply(hr, Degradation()), hr)  # the clean case is the identity


def test_range_samples_every_kind_within_bounds():
    from sharpkd.degrade import GENERAL

    rng = np.random.default_rng(0)
    ds = [GENERAL.sample(rng) for _ in range(2000)]
    clean = sum(d.sigma_x == 0 and d.scale == 1 and not d.noise and not d.jpeg for d in ds) / len(ds)
    assert abs(clean - GENERAL.clean_share) < 0.04
    assert all(0 <= d.sigma_x <= 2 and 0 <= d.sigma_y <= 2 and 1 <= d.scale <= 4 for d in ds)
    assert any(d.sigma_x != d.sigma_y for d in ds) and any(d.jpeg for d in ds) and any(d.noise for d in ds)
    assert {d.down_filter for d in ds if d.scale > 1} == set(GENERAL.filters)
    assert all(GENERAL.jpeg_quality[0] <= d.jpeg <= GENERAL.jpeg_quality[1] for d in ds if d.jpeg)
    assert all(GENERAL.noise[0] <= d.noise <= GENERAL.noise[1] for d in ds if d.noise)
    # noise and JPEG also come alone, on sharp photos (not only together with blur)
    alone = [d for d in ds if d.sigma_x == 0 and d.scale == 1 and (d.noise or d.jpeg)]
    assert abs(len(alone) / len(ds) - GENERAL.artifacts_only_share) < 0.04
    assert any(d.noise and not d.jpeg for d in alone) and any(d.jpeg and not d.noise for d in alone)


def test_data_sets_prepared_before_the_artifacts_only_share_keep_their_distribution():
    from sharpkd.degrade import GENERAL
    from sharpkd.pairs import train_degradations

    recorded = {k: v for k, v in GENERAL.describe().items() if k != "artifacts_only_share"}
    assert train_degradations({"train_degradations": recorded}).artifacts_only_share == 0.0
    assert train_degradations({"train_degradations": GENERAL.describe()}) == GENERAL


def test_anisotropic_blur_is_stronger_along_its_long_axis():
    from sharpkd.degrade import Degradation, apply

    img = np.zeros((41, 41, 3), np.uint8)
    img[20, 20] = 255
    out = apply(img, Degradation(sigma_x=2.0, sigma_y=0.3, theta=0.0)).astype(int)[..., 0]
    assert out[20, 23] > 0 and out[23, 20] == 0  # spread along x, not along y


@pytest.mark.parametrize("kind", ["noise", "jpeg", "scale"])
def test_each_step_changes_the_image_and_keeps_its_size(kind):
    from sharpkd.degrade import Degradation, apply

    hr = skimage.data.astronaut()[:120, :150]
    d = {"noise": Degradation(noise=5.0), "jpeg": Degradation(jpeg=60), "scale": Degradation(scale=2.5, down_filter="box")}[kind]
    out = apply(hr, d, np.random.default_rng(0))
    assert out.shape == hr.shape and out.dtype == np.uint8 and not np.array_equal(out, hr)
