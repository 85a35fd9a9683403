"""The general model: degradation conditions, the estimator and its calibration, tiling, and the bundled one."""

import itertools

import numpy as np
import pytest
import skimage.data
import torch
from click.testing import CliRunner
from PIL import Image

from sharpkd import metrics, pretrained
from sharpkd.cli import main
from sharpkd.degrade import CANONICAL, GENERAL, Degradation, apply, conditions, degrade
from sharpkd.inference import enhance, enhance_pixels
from sharpkd.models.cleanup import tensor_reader
from sharpkd.models.general import (
    SCALE_LADDER,
    General,
    GeneralConfig,
    calibrate,
    fit_pooled_scale,
    textured_crops,
)


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def tiny_general(seed: int = 0) -> General:
    torch.manual_seed(seed)
    model = General(GeneralConfig(channels=8, blocks=2, estimator_channels=4)).eval()
    torch.nn.init.normal_(model.net.tail.weight, std=0.05)  # not the identity, so conditions matter
    return model


def test_conditions_scale_each_degradation_to_0_1():
    assert conditions(Degradation()) == (0.0, 0.0, 0.0, 0.0)
    assert conditions(Degradation.of(CANONICAL)) == (0.5, 1.0, 0.0, 0.0)
    assert conditions(Degradation(noise=5.0, jpeg=65)) == (0.0, 0.0, 0.5, 0.5)
    rng = np.random.default_rng(0)
    samples = np.array([conditions(GENERAL.sample(rng)) for _ in range(500)])
    assert samples.min() >= 0 and samples.max() <= 1
    assert (samples == 0).all(axis=1).mean() == pytest.approx(GENERAL.clean_share, abs=0.05)
    canonical = (samples == np.array([0.5, 1.0, 0.0, 0.0])).all(axis=1).mean()
    assert canonical == pytest.approx(GENERAL.canonical_share, abs=0.05)


def test_stated_conditions_change_the_output_and_blind_mode_uses_the_estimate():
    model = tiny_general()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        clean, soft = model(x, torch.zeros(1, 4)), model(x, torch.tensor([[0.5, 1.0, 0.0, 0.0]]))
        assert (clean - soft).abs().max() > 1e-4
        assert torch.equal(model(x), model(x, model.estimate(x)))


def test_tiled_output_equals_whole_image_output_with_one_estimate_per_photo():
    """The estimate is made once per photo, so tiles cannot disagree: tiled == whole."""
    model = tiny_general()
    loaded = pretrained.describe(model, "g")
    photo = skimage.data.astronaut()[100:250, 50:253]
    whole, _ = enhance_pixels(loaded, photo, tile=0)
    tiled, run = enhance_pixels(loaded, photo, tile=64)
    assert np.abs(whole.astype(int) - tiled).max() <= 1  # equal up to float rounding at .5 boundaries
    assert run.described.startswith("g, estimated blur ")


def test_textured_crops_prefer_detail_over_flat_areas():
    x = torch.full((1, 3, 256, 512), 0.5)
    x[..., :, 256:] = torch.rand(1, 3, 256, 256)  # right half: fine detail
    crops = textured_crops(x, size=128, count=2)
    assert crops.shape == (2, 3, 128, 128) and all(c.std() > 0.1 for c in crops)


def test_calibration_maps_sharp_photos_to_zero_and_is_monotone():
    model = tiny_general()
    photos = [np.ascontiguousarray(skimage.data.astronaut()[:160, :160]), np.ascontiguousarray(skimage.data.coffee()[:160, :160])]
    knots = calibrate(model, photos)
    xs, ys = zip(*knots)
    assert all(b > a for a, b in zip(xs, xs[1:])) and all(b >= a for a, b in zip(ys, ys[1:]))
    assert ys[0] == 0 and ys[-1] == 1
    with torch.no_grad():
        for photo in photos:  # the largest guess of a sharp photo maps to 0
            x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
            assert float(model.estimate(x)[0, 0]) == pytest.approx(0.0, abs=1e-6)
    # the curve itself: piecewise linear through the knots
    guess = torch.tensor([[xs[2], 0.3, 0.2, 0.1], [(xs[2] + xs[3]) / 2, 0, 0, 0]])
    mapped = model.estimator.calibrated(guess)
    assert mapped[0].tolist() == pytest.approx([ys[2], 0.3, 0.2, 0.1], abs=1e-5)
    assert float(mapped[1, 0]) == pytest.approx((ys[2] + ys[3]) / 2, abs=1e-5)


def pooled_copy(model: General) -> General:
    """``model`` with a pooled scale head (zero until fitted), everything else copied."""
    pooled = General(GeneralConfig(**{**model.config.to_dict(), "pooled_scale": True})).eval()
    missing, unexpected = pooled.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("estimator.scale_head.") for k in missing) and len(missing) == 4
    return pooled


def test_pooled_scale_raises_the_scale_only_where_the_crops_see_an_upscale():
    model = tiny_general()
    pooled = pooled_copy(model)
    torch.nn.init.zeros_(pooled.estimator.scale_head[2].weight)  # the head guesses 0.7 for every photo
    torch.nn.init.constant_(pooled.estimator.scale_head[2].bias, 0.7)
    x = torch.rand(1, 3, 160, 160)

    def crops_guess(blur_condition: float, scale: float) -> None:  # every crop guesses this
        for m in (model, pooled):
            m.estimator.blur_knots[1].fill_(blur_condition)
            m.estimator.head.weight.zero_()
            m.estimator.head.bias.fill_(-1e4)
            m.estimator.head.bias[1] = float(torch.logit(torch.tensor(scale))) if scale > 0 else -1e4

    with torch.no_grad():
        raw, _ = pooled.estimator.guess(textured_crops(x))
        assert torch.equal(raw, model.estimate(x, raw=True))  # the raw guess is the crops' as before
        crops_guess(0.0, 0.0)  # found clean: left clean
        assert pooled.estimate(x).abs().max() == 0 and torch.equal(pooled.estimate(x), model.estimate(x))
        crops_guess(0.2, 0.2)  # soft, but no upscale seen: the crops' scale kept
        assert torch.allclose(pooled.estimate(x), model.estimate(x)) and float(pooled.estimate(x)[0, 1]) == pytest.approx(0.2)
        crops_guess(0.2, 0.3)  # an upscale seen: raised to the pooled guess
        cond = pooled.estimate(x)[0]
        assert float(cond[0]) == pytest.approx(0.2) and float(cond[1]) == pytest.approx(0.7)
        run = pretrained.describe(pooled, "g").for_photo(tensor_reader(x), 160, 160)  # what -v prints
        assert "scale 0.70 " in run.described and "the crops' 0.30" in run.described
        crops_guess(0.2, 0.9)  # the crops guess more: kept (the pooled guess only raises it)
        assert float(pooled.estimate(x)[0, 1]) == pytest.approx(0.9)


def test_training_can_start_from_a_model_with_a_pooled_scale_head():
    """--init bundled (and distilling from the bundled general) takes body and estimator; the head, fitted
    on the final features after training, only where both models have one."""
    from sharpkd.training import warm_start

    source = pooled_copy(tiny_general())
    fresh = General(GeneralConfig(channels=8, blocks=2, estimator_channels=4))
    assert warm_start(fresh, source, "src") == "body + estimator without its scale head"
    assert torch.equal(fresh.estimator.head.weight, source.estimator.head.weight) and fresh.estimator.scale_head is None
    pooled = General(GeneralConfig(channels=12, blocks=2, estimator_channels=4, pooled_scale=True))  # another body
    assert warm_start(pooled, source, "src") == "estimator"
    assert torch.equal(pooled.estimator.scale_head[0].weight, source.estimator.scale_head[0].weight)


def test_fit_pooled_scale_learns_the_scale_from_pooled_features():
    """With features that see fine detail (a fixed Laplacian's energy at a few gains), the fitted head,
    as installed (the features' standardisation folded into it), tells the upscales apart; with no head,
    fitting is refused."""
    model = pooled_copy(tiny_general())
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]) / 3
    with torch.no_grad():
        for k in range(8):
            conv.weight[k] = (1 if k % 2 else -1) * 2 ** (k // 2) * lap
    model.estimator.features = torch.nn.Sequential(conv, torch.nn.ReLU())
    photos = [np.ascontiguousarray(im[:128, :128]) for im in (skimage.data.astronaut(), skimage.data.coffee(),
                                                             skimage.data.chelsea(), skimage.data.rocket())]
    record = fit_pooled_scale(model, photos, steps=1000)
    assert record["photos"] == 4 and len(record["rungs"]) == len(SCALE_LADDER)
    assert record["rmse"] < 0.5 * record["rmse_before"]  # the untrained crop guesses sit near 0.5 for every rung
    # blur 1.0 without upscaling, x2, x3, x4: the installed head's median guesses rise with the scale
    medians = [r["pooled"][1] for r in record["rungs"] if r["blur"] == 1.0]
    assert [r["scale"] for r in record["rungs"] if r["blur"] == 1.0] == [1.0, 2.0, 3.0, 4.0]
    assert all(b > a + 0.15 for a, b in itertools.pairwise(medians)), medians
    crops = textured_crops(torch.from_numpy(apply(photos[0], Degradation(1.0, 1.0, scale=4.0))).permute(2, 0, 1)[None].float() / 255)
    with torch.no_grad():  # what Estimator.guess computes from the crops
        guess = float(model.estimator.pooled_scale_guess(model.estimator.crop_features(crops)))
    assert guess > 0.7
    with pytest.raises(ValueError, match="no pooled scale head"):
        fit_pooled_scale(tiny_general(), photos)


@pytest.fixture(scope="module")
def sharp_photo():
    """A sharp 256x256 photo (astronaut, 2x area-downscaled, which makes it crisper than the original)."""
    big = Image.fromarray(skimage.data.astronaut())
    return np.asarray(big.resize((256, 256), Image.BOX))


@pytest.mark.parametrize("name", ["general", "fast"])
def test_bundled_general_leaves_a_sharp_photo_alone_and_sharpens_a_soft_one(sharp_photo, name):
    loaded = pretrained.load(name)
    out = enhance(loaded, sharp_photo, tile=0)
    assert metrics.psnr(out, sharp_photo) >= 40.0
    hr, lq = degrade(sharp_photo)
    assert metrics.psnr(enhance(loaded, lq, tile=0), hr) > metrics.psnr(lq, hr) + 0.3
    soft = apply(sharp_photo, Degradation(sigma_x=1.0, sigma_y=1.0))
    assert metrics.psnr(enhance(loaded, soft, tile=0), sharp_photo) > metrics.psnr(soft, sharp_photo) + 0.3
    # slight blur: the estimator errs toward doing less (this model leaves it alone), never worse
    slight = apply(sharp_photo, Degradation(sigma_x=0.6, sigma_y=0.6))
    assert metrics.psnr(enhance(loaded, slight, tile=0), sharp_photo) >= metrics.psnr(slight, sharp_photo)


def test_fast_has_the_general_estimator_and_a_cheaper_network():
    """`fast` is `general` cut to fewer channels and distilled with its estimator kept: the same guesses
    (so the same photos are left alone), a network with fewer MACs per pixel."""
    general, fast = pretrained.load("general").model, pretrained.load("fast").model
    ours, theirs = fast.estimator.state_dict(), general.estimator.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert fast.config.channels < general.config.channels and fast.config.blocks == general.config.blocks
    # the same receptive field; its measured tile margin (benchmarks/margin.py) is no larger
    assert fast.context == general.context and pretrained.bundled_spec("fast").context <= pretrained.bundled_spec("general").context


def test_enhance_defaults_to_general_and_verbose_says_which_model_ran(tmp_path, sharp_photo):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(sharp_photo).save(src / "sharp.png")
    r = run("enhance", src, "-o", tmp_path / "out", "-v")
    assert r.exit_code == 0, r.output
    assert "model: general, estimated blur" in " ".join(r.output.split())
    r = run("enhance", src, "-o", tmp_path / "x4", "-v", "--model", "x4")
    assert r.exit_code == 0 and "(model: x4)" in r.output
    r = run("enhance", src, "-o", tmp_path / "old", "--model", "student", "--strength", "0.5")  # the old name still works
    assert r.exit_code == 0, r.output
    half = np.asarray(Image.open(tmp_path / "old" / "sharp.png")).astype(int)
    full = np.asarray(Image.open(tmp_path / "x4" / "sharp.png")).astype(int)
    assert np.abs(half - sharp_photo).mean() < np.abs(full - sharp_photo).mean()


def test_an_unchanged_photo_is_written_as_the_original_file_not_re_encoded(tmp_path, sharp_photo):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(sharp_photo).save(src / "sharp.jpg", quality=80)
    assert run("enhance", src, "-o", tmp_path / "g").exit_code == 0  # general: estimated clean
    assert (tmp_path / "g" / "sharp.jpg").read_bytes() == (src / "sharp.jpg").read_bytes()
    assert run("enhance", src, "-o", tmp_path / "s0", "--model", "x4", "--strength", "0").exit_code == 0
    assert (tmp_path / "s0" / "sharp.jpg").read_bytes() == (src / "sharp.jpg").read_bytes()
    assert run("enhance", src, "-o", tmp_path / "png", "--format", "png").exit_code == 0  # another format: encoded
    assert np.array_equal(np.asarray(Image.open(tmp_path / "png" / "sharp.png")), np.asarray(Image.open(src / "sharp.jpg")))
    assert run("enhance", src, "-o", tmp_path / "x4", "--model", "x4").exit_code == 0  # changed pixels: encoded
    assert (tmp_path / "x4" / "sharp.jpg").read_bytes() != (src / "sharp.jpg").read_bytes()


def test_general_training_needs_a_general_data_set(tmp_path):
    src = tmp_path / "hr"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.ascontiguousarray(skimage.data.coffee()[i * 150 : i * 150 + 140, :160])).save(src / f"{i}.png")
    assert run("prepare", "--images", src, "--name", "plain", "--val-count", "1").exit_code == 0
    r = run("train-teacher", "--arch", "general", "--dataset", "plain", "--steps", "2", "--patch", "32")
    assert r.exit_code == 1 and "--degradations general" in r.output


@pytest.mark.parametrize("linear", [False, True])
def test_a_linear_estimate_keeps_learning_where_the_sigmoid_is_saturated(linear):
    """The bundled estimator's noise and JPEG logits sat near -1000: a sigmoid passes no gradient there,
    so a noisy photo could never raise the guess. The linear output's loss still moves it."""
    from sharpkd.models.general import Estimator
    from sharpkd.train_teacher import quantile_loss

    torch.manual_seed(0)
    est = Estimator(4, linear=linear)
    with torch.no_grad():
        est.head.bias.fill_(-1000.0)
    x = torch.rand(2, 3, 32, 32)
    assert (est(x) == 0).all() and est(x).shape == (2, 4)  # both read as "nothing there" in use
    quantile_loss(est.for_loss(x), torch.full((2, 4), 0.5), 0.3).backward()
    moved = float(est.head.bias.grad.abs().max())
    assert (moved > 0.1) if linear else (moved == 0)
    with torch.no_grad():
        est.head.bias.fill_(5.0)
    assert (est(x) == 1).all() if linear else torch.allclose(est(x), torch.ones(2, 4), atol=0.01)


def test_a_balanced_loss_weighs_slightly_degraded_crops_like_heavily_degraded_ones():
    """Unbalanced, a crop whose input is far off dominates the L1; balanced, the same relative miss
    (here: the output keeps half of each input's error) costs each crop the same."""
    from sharpkd.train_teacher import BALANCE_FLOOR, general_loss

    torch.manual_seed(0)
    model = tiny_general()
    hr = torch.rand(2, 3, 32, 32) * 0.8 + 0.1
    error = torch.stack([torch.full((3, 32, 32), 0.2), torch.full((3, 32, 32), 0.02)])  # blurred-like, noise-like
    lq = hr + error
    model.net.forward = lambda x, cond: hr + (x - hr) / 2  # keeps half of each crop's error

    def l1(balance):
        torch.manual_seed(1)
        _, parts = general_loss(model, estimator_weight=0.0, balance=balance)(lq, hr, torch.zeros(2, 4))
        return parts["l1"]

    per_crop = torch.tensor([0.1, 0.01])
    assert l1(False) == pytest.approx(float(per_crop.mean()), rel=1e-5)  # the blurred crop makes 91 % of it
    w = 1 / (torch.tensor([0.2, 0.02]) + BALANCE_FLOOR)
    assert l1(True) == pytest.approx(float((per_crop * w / w.mean()).mean()), rel=1e-5)
    assert float(per_crop[1] * w[1]) / float(per_crop[0] * w[0]) > 0.6  # unbalanced: 0.1
