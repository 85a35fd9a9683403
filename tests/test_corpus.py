"""Every pixel format a photo folder holds, through the CLI with a model that changes the pixels (x4):
8/16 bit, planar/contiguous, L/LA/RGB/RGBA/P/CMYK, PNG/TIFF/JPEG/WebP/GIF (animated ones are refused
with a reason). Each output keeps its kind (grey stays grey, alpha stays alpha and untouched, 16 bit
stays 16 bit) and its colour differs from the input: the network really ran."""

import numpy as np
import png
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from sharpkd import imagefile
from sharpkd.cli import main


def write_png16(path, a, greyscale, alpha):
    h, w = a.shape[:2]
    with open(path, "wb") as f:
        png.Writer(w, h, greyscale=greyscale, alpha=alpha, bitdepth=16).write_array(f, a.reshape(-1))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, photo):
    d = tmp_path_factory.mktemp("corpus")
    rgb, grey = photo, photo[..., 1]
    alpha8 = np.tile(np.linspace(30, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))
    rgb16, grey16, alpha16 = rgb.astype(np.uint16) * 257, grey.astype(np.uint16) * 257, alpha8.astype(np.uint16) * 257
    Image.fromarray(grey, "L").save(d / "l8.png")
    Image.fromarray(np.dstack([grey, alpha8]), "LA").save(d / "la8.png")
    Image.fromarray(rgb).save(d / "rgb8.png")
    Image.fromarray(np.dstack([rgb, alpha8]), "RGBA").save(d / "rgba8.png")
    Image.fromarray(rgb).quantize(256).save(d / "p8.png")
    Image.fromarray(grey16).save(d / "l16.png")
    write_png16(d / "la16.png", np.dstack([grey16, alpha16]), True, True)
    write_png16(d / "rgb16.png", rgb16, False, False)
    write_png16(d / "rgba16.png", np.dstack([rgb16, alpha16]), False, True)
    Image.fromarray(rgb).save(d / "rgb8.tif")
    tifffile.imwrite(d / "rgb16.tif", rgb16, photometric="rgb")
    tifffile.imwrite(d / "rgb16planar.tif", np.moveaxis(rgb16, -1, 0), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(d / "l16.tif", grey16, photometric="minisblack")
    Image.fromarray(rgb).save(d / "rgb8.jpg", quality=95)
    Image.fromarray(grey).save(d / "l8.jpg", quality=95)
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).save(d / "rgb8.webp", lossless=True)
    Image.fromarray(np.dstack([rgb, alpha8]), "RGBA").save(d / "rgba8.webp", lossless=True)
    Image.fromarray(rgb).quantize(256).save(d / "still.gif")
    frames = [Image.fromarray(np.roll(rgb, 8 * i, axis=1)).quantize(256) for i in range(3)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:])
    out = d / "out"
    result = CliRunner().invoke(main, ["enhance", str(d), "-o", str(out), "--model", "x4"])
    return d, out, result


# input file -> (output file, channels, dtype, alpha kept)
EXPECTED = {
    "l8.png": ("l8.png", 1, np.uint8, False), "la8.png": ("la8.png", 1, np.uint8, True),
    "rgb8.png": ("rgb8.png", 3, np.uint8, False), "rgba8.png": ("rgba8.png", 3, np.uint8, True),
    "p8.png": ("p8.png", 3, np.uint8, False), "l16.png": ("l16.png", 1, np.uint16, False),
    "la16.png": ("la16.png", 1, np.uint16, True), "rgb16.png": ("rgb16.png", 3, np.uint16, False),
    "rgba16.png": ("rgba16.png", 3, np.uint16, True), "rgb8.tif": ("rgb8.tif", 3, np.uint8, False),
    "rgb16.tif": ("rgb16.tif", 3, np.uint16, False), "rgb16planar.tif": ("rgb16planar.tif", 3, np.uint16, False),
    "l16.tif": ("l16.tif", 1, np.uint16, False), "rgb8.jpg": ("rgb8.jpg", 3, np.uint8, False),
    "l8.jpg": ("l8.jpg", 1, np.uint8, False), "cmyk.jpg": ("cmyk.jpg", 3, np.uint8, False),
    "rgb8.webp": ("rgb8.webp", 3, np.uint8, False), "rgba8.webp": ("rgba8.webp", 3, np.uint8, True),
    "still.gif": ("still.png", 3, np.uint8, False),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_format_comes_out_right_and_changed(corpus, name):
    d, out, result = corpus
    target, channels, dtype, has_alpha = EXPECTED[name]
    assert (out / target).exists(), result.output
    src, dst = imagefile.read(d / name), imagefile.read(out / target)
    assert dst.color.shape == (*src.color.shape[:2], channels) and dst.color.dtype == dtype
    assert (dst.alpha is not None) == has_alpha
    if has_alpha:
        np.testing.assert_array_equal(dst.alpha, src.alpha)
    a = src.color.astype(float) / (257 if dtype == np.uint16 else 1)
    b = dst.color.astype(float) / (257 if dtype == np.uint16 else 1)
    if src.color.shape[2] != channels:
        a = a.mean(axis=2, keepdims=True) if channels == 1 else np.repeat(a, 3, axis=2)
    assert np.abs(a - b).max() > 5, "the network did not change the pixels"


def test_animated_gif_is_refused_with_its_reason_and_the_rest_is_done(corpus):
    d, out, result = corpus
    assert result.exit_code == 1
    assert "anim.gif: animated image with 3 frames" in result.output
    assert f"{len(EXPECTED)} done" in result.output
