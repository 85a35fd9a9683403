import io

import numpy as np
import png
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

from sharpkd import imagefile
from sharpkd.imagefile import ImageFileError, Picture


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_every_exif_orientation_matches_pillow(tmp_path, photo):
    for o in range(1, 9):
        im = Image.fromarray(photo)
        exif = im.getexif()
        exif[imagefile.ORIENTATION_TAG] = o
        path = tmp_path / f"o{o}.png"
        im.save(path, exif=exif.tobytes())
        pic = imagefile.read(path)
        want = np.asarray(ImageOps.exif_transpose(Image.open(path)))
        np.testing.assert_array_equal(pic.color, want)
        # written EXIF says "upright" but keeps the other tags
        out = tmp_path / f"out{o}.jpg"
        imagefile.write(pic, out, "jpeg")
        assert Image.open(out).getexif().get(imagefile.ORIENTATION_TAG) in (None, 1) if o == 1 else Image.open(out).getexif()[imagefile.ORIENTATION_TAG] == 1


def test_exif_and_icc_are_copied(tmp_path, photo):
    im = Image.fromarray(photo)
    exif = im.getexif()
    exif[0x010F] = "TestCam"  # Make
    icc = srgb_icc()
    src = tmp_path / "in.jpg"
    im.save(src, exif=exif.tobytes(), icc_profile=icc)
    pic = imagefile.read(src)
    for fmt in ("jpeg", "png", "webp", "tiff"):
        out = tmp_path / f"out.{fmt}"
        imagefile.write(pic, out, fmt)
        with Image.open(out) as got:
            assert got.info.get("icc_profile") == icc, fmt
            assert got.getexif().get(0x010F) == "TestCam", fmt


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_sixteen_bit_png_stays_sixteen_bit(tmp_path, channels):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, (20, 30, channels), dtype=np.uint16)
    src = tmp_path / "in.png"
    png.Writer(30, 20, greyscale=channels == 1, alpha=channels == 4, bitdepth=16).write_array(open(src, "wb"), a.reshape(-1))
    pic = imagefile.read(src)
    assert pic.color.dtype == np.uint16
    assert (pic.alpha is not None) == (channels == 4)
    out = tmp_path / "out.png"
    imagefile.write(pic, out)
    np.testing.assert_array_equal(imagefile.read(out).color, a[..., :3] if channels == 4 else a)
    if channels == 4:
        np.testing.assert_array_equal(imagefile.read(out).alpha, a[..., 3])


def test_sixteen_bit_tiff_stays_sixteen_bit_with_icc(tmp_path):
    a = np.random.default_rng(1).integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    icc = srgb_icc()
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, a, photometric="rgb", extratags=[(imagefile.ICC_TIFF_TAG, 7, len(icc), icc, True)])
    pic = imagefile.read(src)
    assert pic.color.dtype == np.uint16 and pic.icc == icc
    out = tmp_path / "out.tif"
    imagefile.write(pic, out)
    back = imagefile.read(out)
    np.testing.assert_array_equal(back.color, a)
    assert back.icc == icc


def test_alpha_gray_and_palette(tmp_path, photo):
    rgba = np.dstack([photo, np.arange(photo.size // 3, dtype=np.uint32).reshape(photo.shape[:2]) % 256]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    pic = imagefile.read(tmp_path / "a.png")
    np.testing.assert_array_equal(pic.alpha, rgba[..., 3])

    Image.fromarray(photo[..., 0]).save(tmp_path / "g.png")
    g = imagefile.read(tmp_path / "g.png")
    assert g.gray and g.color.shape == (*photo.shape[:2], 1)
    imagefile.write(g, tmp_path / "g_out.png")
    assert Image.open(tmp_path / "g_out.png").mode == "L"

    pal = Image.fromarray(photo).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.save(tmp_path / "p.png")
    p = imagefile.read(tmp_path / "p.png")
    assert p.color.shape[2] == 3 and p.alpha is None
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    assert imagefile.read(tmp_path / "pt.png").alpha is not None


def test_unreadable_files_name_the_file_and_reason(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageFileError) as e:
        imagefile.read(bad)
    assert e.value.path == bad and "broken.jpg" in str(e.value)
    with pytest.raises(ImageFileError, match="not found"):
        imagefile.read(tmp_path / "missing.png")
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[:-30])
    with pytest.raises(ImageFileError):
        imagefile.read(tmp_path / "cut.png")


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, photo):
    out = tmp_path / "sub" / "x.png"
    imagefile.write(Picture(photo), out)
    assert out.exists() and [p.name for p in out.parent.iterdir()] == ["x.png"]
