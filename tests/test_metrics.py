import math

import numpy as np
import pytest
import skimage.data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sharpkd import metrics
from sharpkd.degrade import degrade


def test_identical_images_give_inf_psnr_and_ssim_one(photo):
    assert metrics.psnr(photo, photo) == math.inf
    assert metrics.ssim(photo, photo) == pytest.approx(1.0)


def test_constant_error_gives_formula_psnr():
    a = np.full((40, 40, 3), 100, np.uint8)
    b = a.copy()
    b[..., 1] += 5  # green only: Y moves by 5 * 128.553 / 255
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (5 * 128.553 / 255) ** 2))


def test_grey_is_scored_as_the_y_of_equal_rgb():
    """HxW, HxWx1 and the same picture as RGB give one score (grey: R = G = B, so Y = 16 + 219/255 grey)."""
    a = np.full((40, 40), 100, np.uint8)
    b = a + np.uint8(5)
    want = 10 * math.log10(255**2 / (5 * 219 / 255) ** 2)
    rgb = lambda g: np.repeat(g[..., None], 3, axis=2)  # noqa: E731
    for x, y in ((a, b), (a[..., None], b[..., None]), (rgb(a), rgb(b))):
        assert metrics.psnr(x, y) == pytest.approx(want)
    assert metrics.ssim(a[..., None], b[..., None]) == pytest.approx(metrics.ssim(rgb(a), rgb(b)))


def test_y_channel_is_matlab_bt601():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], np.float64)
    np.testing.assert_allclose(metrics.rgb_to_y(rgb), [[235.0, 16.0, 16 + 65.481]])


def test_matches_scikit_image_on_real_photos():
    hr = skimage.data.astronaut()
    _, lq = degrade(hr)
    y = lambda im: metrics.rgb_to_y(im.astype(np.float64))[4:-4, 4:-4]  # noqa: E731
    want_ssim = structural_similarity(y(lq), y(hr), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert metrics.ssim(lq, hr) == pytest.approx(want_ssim, abs=1e-10)
    assert metrics.psnr(lq, hr) == pytest.approx(peak_signal_noise_ratio(y(hr), y(lq), data_range=255), abs=1e-10)
    rgb = metrics.Convention(rgb=True, crop=0)
    want_rgb = structural_similarity(lq.astype(float), hr.astype(float), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=2)
    assert metrics.ssim(lq, hr, rgb) == pytest.approx(want_rgb, abs=1e-10)


def test_sixteen_bit_is_scaled_to_255(photo):
    wide = photo.astype(np.uint16) * 257
    noisy = np.clip(photo.astype(int) + 3, 0, 255).astype(np.uint8)
    assert metrics.psnr(wide, noisy.astype(np.uint16) * 257) == pytest.approx(metrics.psnr(photo, noisy), abs=1e-9)


def test_mismatched_shapes_raise(photo):
    with pytest.raises(ValueError, match="differ in size"):
        metrics.psnr(photo, photo[:-1])


def test_border_crop_excludes_the_rim(photo):
    damaged = photo.copy()
    damaged[:4] = 0
    assert metrics.psnr(damaged, photo) == math.inf
    assert metrics.psnr(damaged, photo, metrics.Convention(crop=0)) < 30
