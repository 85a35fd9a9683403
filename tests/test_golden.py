"""Golden outputs: each bundled model, on a stored input, gives the stored output (tools/make_golden.py).

A change of weights, loader, tiling or inference path shows up here. Tolerance: 1 level on a few values,
for CPUs whose vector units round the last float bit differently."""

import numpy as np
import pytest

from sharpkd import pretrained
from sharpkd.imagefile import Picture
from sharpkd.inference import enhance, load

GOLDEN = __import__("pathlib").Path(__file__).parent / "golden"


CLEANUP = sorted(p.stem.removesuffix("-cleanup") for p in GOLDEN.glob("*-cleanup.npz"))
# (model, golden file): every bundled model on a canonical input; models with a cleanup stage also on a
# noisy, JPEG-compressed input that goes through that stage
GOLDENS = [(n, f"{n}.npz") for n in pretrained.BUNDLED] + [(n, f"{n}-cleanup.npz") for n in CLEANUP]


@pytest.mark.parametrize(("name", "file"), GOLDENS)
@pytest.mark.parametrize("tile", [0, 64])
def test_bundled_model_reproduces_its_golden_output(name, file, tile):
    data = np.load(GOLDEN / file)
    assert str(data["sha256"]) == pretrained.bundled_spec(name).sha256, "weights changed: rerun tools/make_golden.py"
    loaded = load(name)
    out = enhance(loaded, data["input"], tile=tile)
    diff = np.abs(out.astype(int) - data["output"])
    # whole image: the stored output up to last-bit rounding; tiled: within the 1 level its measured
    # tile margin keeps (weights/<name>.json "context"; benchmarks/margin.py)
    assert diff.max() <= 1 and (diff > 0).mean() < (0.001 if tile == 0 else 0.01), (diff.max(), (diff > 0).mean())
    assert np.abs(data["output"].astype(int) - data["input"]).max() > 10  # the golden case is one the model changes
    if file.endswith("-cleanup.npz"):
        from sharpkd.inference import photo_run

        assert photo_run(loaded, data["input"]).described.endswith("noise/JPEG cleanup")


def test_models_with_a_cleanup_stage_have_a_cleanup_golden():
    assert CLEANUP == sorted(n for n in pretrained.BUNDLED if getattr(load(n).model, "cleanup", None) is not None)


def test_every_path_gives_the_same_pixels(photo):
    """CLI core, Python API (array and PIL) and evaluation run the same function."""
    from PIL import Image

    from sharpkd.inference import enhance_picture
    from sharpkd.pairs import Pair
    from sharpkd.training import evaluate

    data = np.load(GOLDEN / "x4.npz")
    loaded = load("x4")
    lq = data["input"]
    core = enhance_picture(loaded, Picture(lq)).picture.color
    np.testing.assert_array_equal(enhance(loaded, lq), core)
    np.testing.assert_array_equal(np.asarray(enhance(loaded, Image.fromarray(lq))), core)
    rgba = enhance(loaded, np.dstack([lq, np.full(lq.shape[:2], 200, np.uint8)]), upscale=2)
    pil = np.asarray(enhance(loaded, Image.fromarray(np.dstack([lq, np.full(lq.shape[:2], 200, np.uint8)]), "RGBA"), upscale=2))
    np.testing.assert_array_equal(rgba, pil)  # alpha after --upscale: one path, no disagreement
    from sharpkd import metrics

    ev = evaluate(loaded.model, [Pair("g", lq, lq)], crop=4)
    assert ev["psnr_y"] == pytest.approx(metrics.psnr(core, lq))
