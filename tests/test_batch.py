"""Batches a user can trust: pixel formats, permissions, honest messages, runs that do nothing say why."""

import json
import os
import stat
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from sharpkd import batch, imagefile, inference
from sharpkd.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def changed(a, b) -> bool:
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() > 2


def test_planar_16_bit_tiff_is_read_as_height_width_channels(tmp_path, photo):
    """Item 1: stored plane by plane, it came out as a 3 x W image reported as done."""
    rgb16 = photo.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "scan.tif", np.moveaxis(rgb16, -1, 0), photometric="rgb", planarconfig="separate")  # 3 x H x W
    r = run("enhance", tmp_path / "scan.tif", "-o", tmp_path / "out", "--model", "x4")
    assert r.exit_code == 0, r.output
    out = tifffile.imread(tmp_path / "out" / "scan.tif")
    assert out.shape == rgb16.shape and out.dtype == np.uint16 and changed(out, rgb16)


def test_16_bit_grey_with_alpha_png_stays_16_bit(tmp_path, photo):
    """Item 2: PNG colour type 4 at 16 bits came out as 8-bit RGBA."""
    grey = photo[..., 1].astype(np.uint16) * 257
    alpha = np.tile(np.linspace(0, 65535, photo.shape[1]).astype(np.uint16), (photo.shape[0], 1))
    with open(tmp_path / "la16.png", "wb") as f:
        png.Writer(photo.shape[1], photo.shape[0], greyscale=True, alpha=True, bitdepth=16).write_array(f, np.dstack([grey, alpha]).reshape(-1))
    r = run("enhance", tmp_path / "la16.png", "-o", tmp_path / "out", "--model", "x4")
    assert r.exit_code == 0, r.output
    w, h, rows, info = png.Reader(filename=str(tmp_path / "out" / "la16.png")).asDirect()
    out = np.vstack([np.asarray(row, np.uint16) for row in rows]).reshape(h, w, info["planes"])
    assert info["bitdepth"] == 16 and info["planes"] == 2 and info["greyscale"] and info["alpha"]
    np.testing.assert_array_equal(out[..., 1], alpha)
    assert changed(out[..., 0], grey)


def test_outputs_get_the_permissions_of_an_ordinary_file(tmp_path, photo):
    """Item 3: every output was created 0600 (the temporary file's mode), byte copies included."""
    Image.fromarray(photo).save(tmp_path / "a.png")
    old = os.umask(0o022)
    try:
        assert run("enhance", tmp_path / "a.png", "-o", tmp_path / "x4", "--model", "x4").exit_code == 0
        assert run("enhance", tmp_path / "a.png", "-o", tmp_path / "copy", "--strength", "0").exit_code == 0  # byte copy
    finally:
        os.umask(old)
    for f in (tmp_path / "x4" / "a.png", tmp_path / "copy" / "a.png"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, oct(f.stat().st_mode)


def test_alpha_to_jpeg_is_composited_never_showing_hidden_pixels(tmp_path, photo):
    """Item 4: --format jpg dropped the alpha and showed the colours under transparent pixels."""
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:, :40, :3] = (255, 0, 0)  # red, hidden: fully transparent
    rgba[:, :40, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "logo.png")
    r = run("enhance", tmp_path / "logo.png", "-o", tmp_path / "white", "--format", "jpg", "-v")
    assert r.exit_code == 0 and "composited" in r.output
    white = np.asarray(Image.open(tmp_path / "white" / "logo.jpg")).astype(int)
    assert white[:, :36].min() >= 250  # white, not red (JPEG rounding aside)
    run("enhance", tmp_path / "logo.png", "-o", tmp_path / "black", "--format", "jpg", "--background", "#000000")
    assert np.asarray(Image.open(tmp_path / "black" / "logo.jpg"))[:, :36].max() <= 5
    assert run("enhance", tmp_path / "logo.png", "-o", tmp_path / "x", "--format", "jpg", "--background", "pink").exit_code == 2


def test_output_file_for_a_single_input(tmp_path, photo):
    """Item 5: -o result.jpg created a folder named result.jpg/."""
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(photo).save(tmp_path / "b.png")
    r = run("enhance", tmp_path / "a.png", "-o", tmp_path / "result.jpg", "--model", "x4")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "result.jpg").is_file() and Image.open(tmp_path / "result.jpg").format == "JPEG"
    r = run("enhance", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "two.jpg")
    assert r.exit_code == 1 and "exactly one input file" in r.output and not (tmp_path / "two.jpg").exists()


def test_unwritable_output_is_found_before_any_photo_is_computed(tmp_path, photo, monkeypatch):
    """Item 6: discovered only after each photo was computed, naming a temporary file."""
    Image.fromarray(photo).save(tmp_path / "a.png")
    (tmp_path / "afile").write_text("x")
    computed = []
    monkeypatch.setattr(inference, "enhance_picture", lambda *a, **k: computed.append(1))
    r = run("enhance", tmp_path / "a.png", "-o", tmp_path / "afile" / "out")
    assert r.exit_code == 1 and f"cannot write into the output folder {tmp_path / 'afile' / 'out'}" in r.output
    assert ".sharpkd-" not in r.output and not computed
    if os.geteuid() != 0:  # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        r = run("enhance", tmp_path / "a.png", "-o", tmp_path / "ro")
        assert r.exit_code == 1 and "ro" in r.output and not computed


def test_huge_images_get_a_clear_limit_and_a_way_through(tmp_path, photo):
    """Item 7: a large panorama was refused as a 'decompression bomb' with no way through."""
    Image.fromarray(photo).save(tmp_path / "pano.png")  # 0.012 MP; the limit set below it
    r = run("enhance", tmp_path / "pano.png", "-o", tmp_path / "o", "--max-pixels", "0.01")
    assert r.exit_code == 1 and "above the limit of 0.01" in r.output and "--max-pixels" in r.output
    assert run("enhance", tmp_path / "pano.png", "-o", tmp_path / "o", "--max-pixels", "0.02").exit_code == 0


def test_a_torch_error_fails_that_file_and_the_batch_goes_on(tmp_path, photo, monkeypatch):
    """Item 9: one out-of-memory error aborted the whole batch with a traceback."""
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(photo[::-1]).save(tmp_path / "b.png")
    real = inference.enhance_picture
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(inference, "enhance_picture", flaky)
    r = run("enhance", tmp_path, "-o", tmp_path / "out", "--model", "x4")
    assert r.exit_code == 1
    assert "a.png: out of memory: try a smaller --tile" in r.output
    assert (tmp_path / "out" / "b.png").exists() and not (tmp_path / "out" / "a.png").exists()


@pytest.mark.parametrize("case", ["output-is-input", "only-subfolders", "heic", "empty"])
def test_a_batch_that_does_nothing_says_why(tmp_path, photo, case):
    """Item 10: all of these printed '0 done, 0 skipped, 0 failed' and exited 0."""
    d = tmp_path / "in"
    d.mkdir()
    out = tmp_path / "out"
    if case == "output-is-input":
        Image.fromarray(photo).save(d / "a.png")
        out = d
    elif case == "only-subfolders":
        (d / "2024").mkdir()
        Image.fromarray(photo).save(d / "2024" / "a.png")
    elif case == "heic":
        (d / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    r = run("enhance", d, "-o", out)
    assert r.exit_code == 1, r.output
    want = {"output-is-input": "output folder is the input folder", "only-subfolders": "add -r",
            "heic": "HEIC files (.heic) cannot be read", "empty": "empty folder"}[case]
    assert want in r.output, r.output


def test_plain_run_says_how_many_photos_in_sub_folders_it_left_out(tmp_path, photo):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(photo).save(d / "a.png")
    Image.fromarray(photo).save(d / "sub" / "b.png")
    Image.fromarray(photo).save(d / "sub" / "c.png")
    r = run("enhance", d, "-o", tmp_path / "out")
    assert r.exit_code == 0 and "2 image(s) in sub-folders left out" in r.output


def test_unchanged_photos_are_counted_apart_and_a_full_rerun_says_how_to_redo(tmp_path, photo):
    """Item 11: copies of sharp photos were counted as 'done'."""
    Image.fromarray(photo).save(tmp_path / "sharp.png")  # the general model leaves this crisp crop alone
    r = run("enhance", tmp_path / "sharp.png", "-o", tmp_path / "out", "--json")
    summary = json.loads(r.stdout)
    assert (summary["done"], summary["unchanged"], summary["megapixels"]) == (0, 1, 0)
    r = run("enhance", tmp_path / "sharp.png", "-o", tmp_path / "out2")
    assert "0 done, 1 left unchanged (nothing found to restore; -v says why)" in r.output
    r = run("enhance", tmp_path / "sharp.png", "-o", tmp_path / "out2")
    assert "all 1 outputs exist already: --overwrite redoes them" in r.output


def test_without_a_terminal_each_file_gets_one_plain_line(tmp_path, photo):
    """Item 12: nothing at all was printed when stderr was not a terminal."""
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(photo[::-1]).save(tmp_path / "b.png")
    r = run("enhance", tmp_path, "-o", tmp_path / "out", "--model", "x4")
    lines = [line for line in r.output.splitlines() if line.startswith("done ")]
    assert len(lines) == 2 and "a.png -> " in lines[0]
    assert "━" not in r.output  # no bar drawn into a log


def test_rates_count_computed_pixels_only(tmp_path, photo):
    from sharpkd import console

    Image.fromarray(photo).save(tmp_path / "a.png")
    summary = batch.Summary(done=1, unchanged=5, megapixels=2.0, seconds=4.0)
    assert summary.mp_per_s == 0.5
    bar = console.progress("MP")
    task = bar.add_task("x", total=10)
    assert console._rate(bar.tasks[task]) is None  # nothing computed yet: no rate, no ETA


def test_tiny_tiles_are_raised_to_the_minimum(tmp_path, photo):
    """Item 13: --tile 7 was accepted and ran 70x slower."""
    Image.fromarray(photo).save(tmp_path / "a.png")
    r = run("enhance", tmp_path / "a.png", "-o", tmp_path / "o", "--tile", "7", "--model", "x4")
    assert r.exit_code == 0 and "--tile 7 is below the minimum of 64 px" in r.output


def test_x4_on_sharp_photos_warns_once(tmp_path, photo):
    """Item 14: x4 added halos to sharp photos without a word."""
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(photo[::-1]).save(tmp_path / "b.png")
    r = run("enhance", tmp_path, "-o", tmp_path / "out", "--model", "x4")
    assert r.exit_code == 0 and r.output.count("looks sharp already") == 1
    r = run("enhance", tmp_path, "-o", tmp_path / "gen")
    assert "looks sharp already" not in r.output


def test_upscaled_regions_equal_the_whole_upscale():
    """Item 8's tile-by-tile upscaling is exact: each region equals that region of one whole upscale."""
    from sharpkd.inference import Source

    rng = np.random.default_rng(0)
    color = rng.integers(0, 65536, (37, 29, 3), dtype=np.uint16)
    src = Source(color, 3, 4)
    whole = src.pixels(0, src.height, 0, src.width)
    planes = [np.asarray(Image.fromarray(color[..., c].astype(np.float32), "F").resize((87, 111), Image.BICUBIC)) for c in range(3)]
    np.testing.assert_array_equal(whole, np.clip(np.round(np.stack(planes, 2)), 0, 65535).astype(np.uint16))
    for y0, y1, x0, x1 in ((0, 40, 0, 40), (50, 111, 20, 87), (13, 14, 80, 87)):
        np.testing.assert_array_equal(src.pixels(y0, y1, x0, x1), whole[y0:y1, x0:x1])


def test_upscale_memory_is_bounded_by_the_tiles(tmp_path):
    """Item 8: --upscale 3 on 12 MP peaked at 6.4 GB (the upscaled photo held several times as floats).
    Here 1.5 MP -> 13.5 MP: one float32 RGB copy alone would be 162 MB."""
    import subprocess
    import sys

    code = """
import resource, numpy as np, torch
from sharpkd import pretrained
from sharpkd.inference import enhance_pixels
from sharpkd.models.student import Student, StudentConfig
torch.manual_seed(0)
m = Student(StudentConfig(channels=4, blocks=1))
torch.nn.init.normal_(m.tail.weight, std=0.01)
loaded = pretrained.describe(m.eval().requires_grad_(False), "tiny")
color = np.random.default_rng(0).integers(0, 256, (1000, 1500, 3), dtype=np.uint8)
enhance_pixels(loaded, color[:64, :64], upscale=3)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out, _ = enhance_pixels(loaded, color, upscale=3)
print(out.shape, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    shape, grew_mb = r.stdout.rsplit(" ", 1)
    assert shape == "(3000, 4500, 3)"
    assert int(grew_mb) < 120, f"peak memory grew by {grew_mb} MB (the uint8 output alone is 40 MB)"


def test_image_errors_name_the_file(tmp_path):
    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (32, 32), (80 * i, 0, 0)) for i in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    with pytest.raises(imagefile.ImageFileError, match="animated image with 3 frames"):
        imagefile.read(gif)


def test_the_next_photo_is_decoded_while_this_one_is_restored(tmp_path, photo, monkeypatch):
    """Read-ahead: photo n+1 is being decoded (on the reader's thread) before photo n is restored; a file
    that cannot be decoded still fails alone, named, and every other output is the same as without it."""
    import threading

    names = ["a.png", "b.png", "c.png", "d.png"]
    for i, name in enumerate(names):
        Image.fromarray(np.roll(photo, 7 * i, axis=1)).save(tmp_path / name)
    (tmp_path / "c.png").write_bytes(b"not a png")
    events = []
    real_read = imagefile.read

    def read(path, *args, **kwargs):
        events.append(("read", Path(path).name, threading.current_thread().name))
        return real_read(path, *args, **kwargs)

    real = inference.enhance_picture

    def restore(loaded, pic, *args, **kwargs):
        events.append(("restore", pic.megapixels, threading.current_thread().name))
        return real(loaded, pic, *args, **kwargs)

    monkeypatch.setattr(imagefile, "read", read)
    monkeypatch.setattr(inference, "enhance_picture", restore)
    r = run("enhance", tmp_path, "-o", tmp_path / "out", "--model", "x4")
    assert r.exit_code == 1 and "c.png: not an image" in r.output
    reads = [e for e in events if e[0] == "read"]
    assert [e[1] for e in reads] == names
    # decodable photos are read on the reader's thread; c.png, which has no image header, when its turn comes
    assert all(e[2].startswith("sharpkd-read") == (e[1] != "c.png") for e in reads)
    # the read of b.png began before a.png was restored; that of d.png before b.png's restore ended
    order = [e[0] + (e[1] if e[0] == "read" else "") for e in events]
    assert order.index("readb.png") < order.index("restore")
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["a.png", "b.png", "d.png"]
    monkeypatch.setattr(imagefile, "read", real_read)
    one = run("enhance", tmp_path / "b.png", "-o", tmp_path / "single", "--model", "x4")
    assert one.exit_code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "single" / "b.png")), np.asarray(Image.open(tmp_path / "out" / "b.png")))


def test_read_ahead_holds_no_large_photo_and_still_reads_it(tmp_path, photo):
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    Image.fromarray(photo).save(small)
    Image.fromarray(np.tile(photo, (2, 2, 1))).save(large)
    reader = imagefile.ReadAhead(ahead_pixels=photo.shape[0] * photo.shape[1])
    try:
        reader.start(small)
        assert reader._future is not None
        reader.start(large)  # too large to hold ahead: nothing decodes now, and small is let go
        assert reader._future is None
        assert reader.read(large).color.shape[:2] == (photo.shape[0] * 2, photo.shape[1] * 2)
        assert np.array_equal(reader.read(small, then=large).color, photo) and reader._future is None
    finally:
        reader.close()
