"""The general model's cleanup stage: measuring noise and JPEG blocking, its calibration, and routing."""

import numpy as np
import pytest
import skimage.data
import torch

from sharpkd import pretrained
from sharpkd.degrade import ARTIFACTS, Degradation, apply, conditions
from sharpkd.inference import enhance_pixels
from sharpkd.models import cleanup
from sharpkd.models.cleanup import (
    KNOTS,
    MIRRORS,
    PASSES,
    Stats,
    band_rows,
    calibrate,
    fitted_knots,
    interpolate,
    ladder_knots,
    measure_tensor,
    mirror_mean,
    tensor_reader,
    texture_ratio,
)
from sharpkd.models.general import General, GeneralConfig
from sharpkd.pairs import to_tensor


def stats_of(photo: np.ndarray) -> Stats:
    return measure_tensor(torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float() / 255)


@pytest.fixture(scope="module")
def smooth():
    """A photo with little fine detail of its own (coffee, blurred a little): noise shows on it."""
    return apply(skimage.data.coffee(), Degradation(1.0, 1.0))


def test_noise_statistic_follows_the_noise_sigma(smooth):
    rng = np.random.default_rng(0)
    assert stats_of(smooth).noise < 0.5
    measured = [stats_of(apply(smooth, Degradation(noise=sigma), rng)).noise for sigma in (2.0, 5.0, 8.0)]
    # the flattest blocks, less the share of texture: about 0.75 sigma, the same share at every sigma
    assert all(0.6 * sigma < m < 1.05 * sigma for sigma, m in zip((2.0, 5.0, 8.0), measured))
    assert measured[2] / measured[0] == pytest.approx(4.0, rel=0.15)


def test_fine_texture_does_not_read_as_noise():
    grass = np.repeat(skimage.data.grass()[..., None], 3, axis=2)
    y = grass.astype(np.float64)
    diag = (y[0::2, 0::2] - y[0::2, 1::2] - y[1::2, 0::2] + y[1::2, 1::2]) / 2
    blocks = np.sqrt((diag.reshape(32, 8, 32, 8, 3) ** 2).mean(axis=(1, 3, 4)))
    assert np.quantile(blocks, 0.1) > 5  # no flat block: the finest detail alone reads as noise sigma ~10
    assert stats_of(grass).noise < 0.5  # texture's energy at the coarser scale takes it out
    assert stats_of(apply(grass, Degradation(noise=12.0), np.random.default_rng(0))).noise > 3.0  # strong noise still shows


def test_blocking_statistic_sees_jpeg_and_not_upscaling():
    photo = skimage.data.astronaut()
    clean = stats_of(photo).blocking
    q90, q40 = stats_of(apply(photo, Degradation(jpeg=90))).blocking, stats_of(apply(photo, Degradation(jpeg=40))).blocking
    assert q40 > q90 > clean and q40 > 0.2
    # an x2 or x4 bicubic upscale has a period that divides 8: compared at the same phase, no blocking
    for scale in (2.0, 4.0):
        assert stats_of(apply(photo, Degradation(scale=scale))).blocking < 0.05
    # a JPEG grid that does not start at the photo's corner is not the photo's grid: not counted
    shifted = apply(photo, Degradation(jpeg=40))[4:, 4:]
    assert stats_of(shifted).blocking < q40 / 2


def test_texture_ratio_tells_noise_removal_from_smoothing():
    photo = skimage.data.astronaut()  # textured parts (the suit, the flag) and flat ones (the background)
    h, w = photo.shape[:2]
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 5, photo.shape)).permute(2, 0, 1)[None].float() / 255
    noisy = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255 + noise  # not clipped: exactly this noise
    regions = []  # texture_ratio reads a crop, then restores it

    def read(y0, y1, x0, x1):
        regions.append((y0, y1, x0, x1))
        return noisy[..., y0:y1, x0:x1]

    def remove_the_noise(t):  # a perfect denoiser: takes out the same everywhere
        y0, y1, x0, x1 = regions.pop(0)
        out = t.clone()
        out[..., : y1 - y0, : x1 - x0] -= noise[..., y0:y1, x0:x1]
        return out

    assert texture_ratio(remove_the_noise, read, h, w) < 1.2
    assert not regions
    # smoothing takes detail out of the textured parts, hardly any out of the flat ones
    clean = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    smooth = lambda t: torch.nn.functional.avg_pool2d(t, 3, 1, 1, count_include_pad=False)
    assert texture_ratio(smooth, tensor_reader(clean), h, w) > 3


def test_measurement_reads_bands_on_the_jpeg_grid_and_handles_tiny_photos():
    rows = band_rows(3000)
    assert len(rows) == 8 and all(r % 8 == 0 for r in rows) and rows[-1] + 64 <= 3000
    assert band_rows(50) == [0]
    assert stats_of(np.zeros((10, 10, 3), np.uint8)) == Stats(0.0, 0.0)
    # below MIN_SIDE a photo has too few blocks to measure: a noisy one measures nothing, not noise or JPEG
    noisy = apply(skimage.data.astronaut()[:64, :96], Degradation(noise=8.0), np.random.default_rng(0))
    assert stats_of(noisy).noise > 4.0
    assert stats_of(np.ascontiguousarray(noisy[:cleanup.MIN_SIDE - 1])) == Stats(0.0, 0.0)
    assert stats_of(np.ascontiguousarray(noisy[:16, :16])) == Stats(0.0, 0.0)


def test_knots_map_sharp_photos_to_zero_and_rise_through_the_ladder():
    knots = ladder_knots([0.1, 0.2, 0.3, 0.4], [(0.25, 0.1), (1.0, 0.5), (2.0, 1.0)], 1.0, 0.8)
    assert knots.shape == (2, KNOTS)
    xs, ys = knots.tolist()
    assert xs[0] == pytest.approx(0.4) and ys[0] == 0  # the rung at 0.25 lies below the sharp photos: dropped
    assert ys[1:3] == pytest.approx([0.4, 0.8])  # scale 0.8
    assert interpolate(0.3, knots) == 0 and interpolate(1.5, knots) == pytest.approx(0.6) and interpolate(9.0, knots) == pytest.approx(0.8)


def test_a_noise_scale_of_zero_turns_noise_cleanup_off():
    info = {"sharp_noise": [0.5, 1.0], "sharp_blocking": [0.1, 0.2], "noise_ladder": [[2.0, 0.2], [5.0, 0.5]],
            "jpeg_ladder": [[0.3, 0.4], [0.6, 0.9]], "zero_quantile": 1.0, "scale": 0.8}
    both = fitted_knots(info)
    assert interpolate(5.0, both[0]) == pytest.approx(0.4) and interpolate(0.6, both[1]) == pytest.approx(0.72)
    jpeg_only = fitted_knots(info | {"noise_scale": 0.0})
    assert interpolate(9.0, jpeg_only[0]) == 0 and torch.equal(jpeg_only[1], both[1])


def test_the_artifacts_range_has_no_blur_or_resizing():
    rng = np.random.default_rng(0)
    samples = [ARTIFACTS.sample(rng) for _ in range(300)]
    assert all(d.sigma_x == 0 and d.scale == 1 for d in samples)
    clean = sum(d == Degradation() for d in samples) / len(samples)
    assert clean == pytest.approx(ARTIFACTS.clean_share, abs=0.05)
    assert any(d.noise and d.jpeg for d in samples) and any(d.noise and not d.jpeg for d in samples)


def general_with_cleanup() -> General:
    torch.manual_seed(0)
    model = General(GeneralConfig(channels=8, blocks=2, estimator_channels=4, cleanup_channels=8)).eval()
    torch.nn.init.normal_(model.cleanup.net.tail.weight, std=0.05)
    torch.nn.init.constant_(model.estimator.head.bias, -50.0)  # the estimator finds every photo sharp
    return model


def test_calibrated_cleanup_runs_on_noisy_photos_only_and_tiles_match_the_whole(smooth, monkeypatch):
    model = general_with_cleanup()
    photos = [np.ascontiguousarray(smooth[:200, :200]), np.ascontiguousarray(smooth[200:400, 200:400])]
    info = calibrate(model.cleanup, photos)
    xs = model.cleanup.knots[:, 0]  # the statistics of each kind's knots: rising
    assert info["photos"] == 2 and bool((xs[:, 1:] > xs[:, :-1]).all())
    loaded = pretrained.describe(model, "g")
    crop = np.ascontiguousarray(smooth[:180, :230])
    out, run = enhance_pixels(loaded, crop)
    assert not run.changes and np.array_equal(out, crop) and "clean, left unchanged" in run.described
    noisy = apply(crop, Degradation(noise=6.0), np.random.default_rng(1))
    # an untrained network changes texture more than flat parts: the check drops its noise cleanup
    out, run = enhance_pixels(loaded, noisy)
    assert not run.changes and np.array_equal(out, noisy) and "noise left" in run.described
    monkeypatch.setattr(cleanup, "MAX_TEXTURE_RATIO", float("inf"))  # no check from here on
    whole, run = enhance_pixels(loaded, noisy, tile=0)
    tiled, _ = enhance_pixels(loaded, noisy, tile=64)
    assert run.changes and run.described.endswith("noise/JPEG cleanup")
    assert run.conditions[2] == pytest.approx(conditions(Degradation(noise=6.0))[2], abs=0.15)
    assert np.abs(whole.astype(int) - noisy).max() > 0  # the cleanup network ran
    assert np.abs(whole.astype(int) - tiled).max() <= 1
    # a photo whose raw blur guess is above max_raw_blur (here every photo) is a little soft: its noise
    # is cleaned up, its JPEG blocking is not
    model.cleanup.max_raw_blur.fill_(-1.0)
    out, run = enhance_pixels(loaded, noisy, tile=0)
    assert np.array_equal(out, whole) and "a little soft, no JPEG cleanup" in run.described
    blocky = apply(crop, Degradation(jpeg=20), np.random.default_rng(1))
    model.cleanup.max_raw_blur.fill_(1.0)
    assert enhance_pixels(loaded, blocky)[1].conditions[3] > 0.1  # blocking measured and cleaned up
    model.cleanup.max_raw_blur.fill_(-1.0)
    out, run = enhance_pixels(loaded, blocky)
    assert not run.changes and np.array_equal(out, blocky) and run.conditions[3] == 0


def test_a_soft_noisy_photo_is_cleaned_up_first_then_restored_as_estimated_and_tiles_match(smooth, monkeypatch):
    model = general_with_cleanup()
    photos = [np.ascontiguousarray(smooth[:200, :200]), np.ascontiguousarray(smooth[200:400, 200:400])]
    calibrate(model.cleanup, photos)
    torch.nn.init.normal_(model.net.tail.weight, std=0.05)
    monkeypatch.setattr(cleanup, "MAX_TEXTURE_RATIO", float("inf"))
    soft = torch.tensor([[0.4, 0.5, 0.0, 0.0]])
    monkeypatch.setattr(model, "guess_photo", lambda read, h, w: (soft.clone(), soft.clone()))
    loaded = pretrained.describe(model, "g")
    noisy = apply(np.ascontiguousarray(smooth[:180, :228]), Degradation(noise=6.0), np.random.default_rng(1))
    whole, run = enhance_pixels(loaded, noisy, tile=0)
    assert run.described.endswith("noise/JPEG cleanup, then restored") and run.conditions[:2] == pytest.approx((0.4, 0.5))
    assert run.conditions[2] > 0.1 and run.context == 2 * loaded.context
    with torch.no_grad():  # the cleanup network told what was measured, then the general one told the estimate
        cleaned = model.cleanup(to_tensor(noisy), run.conditions[2], run.conditions[3])
        expected = model.net(cleaned, soft)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(whole.astype(int) - expected).max() <= 1 and np.abs(whole.astype(int) - noisy).max() > 0
    tiled, _ = enhance_pixels(loaded, noisy, tile=64)
    assert np.abs(whole.astype(int) - tiled).max() <= 1


def test_a_general_model_without_cleanup_loads_and_runs_as_before():
    model = General(GeneralConfig(channels=8, blocks=2, estimator_channels=4))
    assert model.cleanup is None and not any(k.startswith("cleanup") for k in model.state_dict())


def test_the_cleanup_output_is_the_mean_over_mirrors_and_its_check_runs_one_pass(smooth):
    model = general_with_cleanup()
    calibrate(model.cleanup, [np.ascontiguousarray(smooth[:200, :200]), np.ascontiguousarray(smooth[200:400, 200:400])])
    noisy = apply(np.ascontiguousarray(smooth[:96, :128]), Degradation(noise=6.0), np.random.default_rng(1))
    x = to_tensor(noisy)
    cond = torch.tensor([[0.0, 0.0, 0.5, 0.3]])
    with torch.no_grad():
        runs = [model.cleanup.net(x.flip(dims), cond).flip(dims) for dims in MIRRORS]
        assert (runs[0] - runs[1]).abs().max() > 1e-4  # the network treats a mirrored photo differently
        assert torch.allclose(model.cleanup(x, 0.5, 0.3), sum(runs[:PASSES]) / PASSES, atol=1e-6)
        assert torch.allclose(model.cleanup(x, 0.5, 0.3, passes=1), runs[0])
        model.cleanup.passes = 4  # what the sweep's --cleanup-passes sets: the default of every call
        assert torch.allclose(model.cleanup(x, 0.5, 0.3), sum(runs) / 4, atol=1e-6)
        model.cleanup.passes = PASSES
        assert torch.allclose(mirror_mean(lambda t: model.cleanup.net(t, cond), x, 4), sum(runs) / 4, atol=1e-6)
        for passes in (0, 5):
            with pytest.raises(ValueError, match="passes must be 1 to 4"):
                mirror_mean(lambda t: t, x, passes)
        # the check before a noise cleanup measures what one pass takes out
        h, w = x.shape[-2:]
        decision = model.cleanup.decide(tensor_reader(x), h, w, 0.01, max_ratio=float("inf"))
        noise = model.cleanup.conditions(decision.stats)[0]
        assert noise >= 0.01 and decision.noise == noise
        one, two = (texture_ratio(lambda t, p=p: model.cleanup(t, noise, 0.0, passes=p), tensor_reader(x), h, w) for p in (1, 2))
    assert decision.texture_ratio == pytest.approx(one) and one != pytest.approx(two)
