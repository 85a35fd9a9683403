import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import sharpkd
from sharpkd import batch, imagefile, pretrained
from sharpkd.cli import main
from sharpkd.models.student import Student, StudentConfig


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture
def photos(tmp_path, photo):
    d = tmp_path / "photos"
    (d / "trip" / "day1").mkdir(parents=True)
    Image.fromarray(photo).save(d / "a.jpg", quality=92)
    Image.fromarray(photo[:, ::-1]).save(d / "b.png")
    Image.fromarray(photo[::-1]).save(d / "trip" / "day1" / "c.png")
    (d / "notes.txt").write_text("not an image")
    return d


def test_folder_to_folder_same_format(photos, tmp_path):
    out = tmp_path / "out"
    r = run("enhance", photos, "-o", out, "-v")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.png"]  # not recursive: c.png untouched
    assert "notes.txt" in r.output  # listed as ignored with --verbose
    assert Image.open(out / "a.jpg").format == "JPEG" and Image.open(out / "b.png").size == (128, 96)


def test_recursive_mirrors_tree_and_format_option(photos, tmp_path):
    out = tmp_path / "out"
    r = run("enhance", photos, "-o", out, "-r", "--format", "webp", "--quality", "80")
    assert r.exit_code == 0, r.output
    assert (out / "trip" / "day1" / "c.webp").exists() and (out / "a.webp").exists()
    assert Image.open(out / "b.webp").format == "WEBP"


def test_existing_outputs_are_skipped_unless_overwrite(photos, tmp_path):
    out = tmp_path / "out"
    run("enhance", photos, "-o", out)
    stamp = (out / "a.jpg").stat().st_mtime_ns
    r = run("enhance", photos, "-o", out, "--json")
    summary = json.loads(r.stdout)
    assert (summary["done"], summary["unchanged"], summary["skipped"], summary["failed"]) == (0, 0, 2, 0)
    assert (out / "a.jpg").stat().st_mtime_ns == stamp
    summary = json.loads(run("enhance", photos, "-o", out, "--json", "--overwrite").stdout)
    assert summary["done"] + summary["unchanged"] == 2 and summary["skipped"] == 0


def test_writing_onto_an_input_is_refused(photos):
    before = (photos / "a.jpg").read_bytes()
    r = run("enhance", photos / "a.jpg", "-o", photos)
    assert r.exit_code == 1 and "overwrite an input" in r.output
    assert (photos / "a.jpg").read_bytes() == before


def test_outputs_inside_an_input_folder_are_not_taken_as_inputs(photos):
    r = run("enhance", photos, "-o", photos / "sharp", "-r", "--json")
    first = json.loads(r.stdout)
    assert first["done"] + first["unchanged"] == 3
    r = run("enhance", photos, "-o", photos / "sharp", "-r", "--json")
    assert json.loads(r.stdout)["skipped"] == 3


def test_corrupt_image_is_reported_and_batch_goes_on(photos, tmp_path):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    r = run("enhance", photos, "-o", tmp_path / "out")
    assert r.exit_code == 1
    assert "broken.jpg" in r.output and "failed" in r.output
    assert (tmp_path / "out" / "a.jpg").exists() and (tmp_path / "out" / "b.png").exists()


def test_usage_errors_exit_2(photos, tmp_path):
    assert run("enhance", photos).exit_code == 2  # no -o
    assert run("enhance", photos, "-o", tmp_path / "o", "--strength", "2").exit_code == 2
    r = run("enhance", photos, "-o", tmp_path / "o", "--model", "student", "--weights", tmp_path)
    assert r.exit_code == 2 and "not both" in r.output


def test_missing_input_and_output_that_is_a_file(photos, tmp_path):
    r = run("enhance", tmp_path / "nope.jpg", "-o", tmp_path / "o")
    assert r.exit_code == 1 and "nope.jpg" in r.output
    (tmp_path / "file").write_text("x")
    r = run("enhance", photos, "-o", tmp_path / "file")
    assert r.exit_code == 1 and "not a folder" in r.output


def test_upscale_and_strength_zero(photos, tmp_path, photo):
    r = run("enhance", photos / "b.png", "-o", tmp_path / "up", "--upscale", "2")
    assert r.exit_code == 0 and Image.open(tmp_path / "up" / "b.png").size == (256, 192)
    run("enhance", photos / "b.png", "-o", tmp_path / "s0", "--strength", "0")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "s0" / "b.png")), photo[:, ::-1])


@pytest.mark.parametrize("model", ["x4", "general"])
def test_output_does_not_depend_on_tile_size(tmp_path, model):
    """With a photo the model changes (a degraded one), and tiles small enough to cut it several ways."""
    import skimage.data

    from sharpkd.degrade import degrade

    _, lq = degrade(skimage.data.astronaut()[:200, 40:264])
    Image.fromarray(lq).save(tmp_path / "soft.png")
    for t in (0, 64, 128):
        assert run("enhance", tmp_path / "soft.png", "-o", tmp_path / f"t{t}", "--tile", t, "--model", model).exit_code == 0
    whole = np.asarray(Image.open(tmp_path / "t0" / "soft.png")).astype(int)
    assert np.abs(whole - lq).max() > 20  # the network ran
    for t in (64, 128):
        assert np.abs(whole - np.asarray(Image.open(tmp_path / f"t{t}" / "soft.png"))).max() <= 1


def test_metadata_alpha_and_bit_depth_survive_the_cli(tmp_path, photo):
    src = tmp_path / "in"
    src.mkdir()
    rgba = np.dstack([photo, np.full(photo.shape[:2], 77, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(src / "alpha.png")
    Image.fromarray(photo[..., 1]).save(src / "gray.png")
    im = Image.fromarray(photo)
    exif = im.getexif()
    exif[imagefile.ORIENTATION_TAG] = 6
    im.save(src / "rotated.jpg", exif=exif.tobytes())
    r = run("enhance", src, "-o", tmp_path / "out", "--model", "x4")  # x4 changes every photo: the encoders run
    assert r.exit_code == 0, r.output
    a = Image.open(tmp_path / "out" / "alpha.png")
    assert a.mode == "RGBA" and np.all(np.asarray(a)[..., 3] == 77)
    assert np.abs(np.asarray(a)[..., :3].astype(int) - photo).max() > 5
    g = Image.open(tmp_path / "out" / "gray.png")
    assert g.mode == "L" and np.abs(np.asarray(g).astype(int) - photo[..., 1]).max() > 5
    rot = Image.open(tmp_path / "out" / "rotated.jpg")
    assert rot.size == (96, 128) and rot.getexif()[imagefile.ORIENTATION_TAG] == 1


def test_bundled_student_sharpens_a_degraded_photo():
    """The shipped weights do their job: a degraded photo gets closer to the original."""
    import skimage.data

    from sharpkd import metrics
    from sharpkd.degrade import degrade

    hr, lq = degrade(skimage.data.astronaut()[:256, :256])
    out = sharpkd.enhance_image(lq)
    assert out.shape == lq.shape and out.dtype == np.uint8
    assert metrics.psnr(out, hr) > metrics.psnr(lq, hr) + 0.3


def test_python_api_pil_and_numpy(photo):
    pil = Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 9, np.uint8)]), "RGBA")
    out = sharpkd.enhance_image(pil)
    assert isinstance(out, Image.Image) and out.mode == "RGBA" and out.size == pil.size
    assert np.all(np.asarray(out)[..., 3] == 9)
    arr = sharpkd.enhance_image(photo, upscale=2)
    assert isinstance(arr, np.ndarray) and arr.shape == (192, 256, 3)
    gray16 = sharpkd.enhance_image(photo[..., 0].astype(np.uint16) * 257)
    assert gray16.dtype == np.uint16 and gray16.shape == photo.shape[:2]
    np.testing.assert_array_equal(sharpkd.enhance_image(photo, strength=0.0), photo)


def test_weights_from_a_training_run(tmp_path, photos):
    model = Student(StudentConfig(channels=8, blocks=1))
    from sharpkd.training import RunSpec, save_atomic, weights_file

    spec = RunSpec("student", model.config.to_dict(), "x", 4)
    (tmp_path / "run").mkdir()
    save_atomic(weights_file(spec, model.state_dict(), {}), tmp_path / "run" / "model.pt")
    r = run("enhance", photos / "b.png", "-o", tmp_path / "o", "--weights", tmp_path / "run", "-v")
    assert r.exit_code == 0 and "model.pt" in r.output
    # a fresh student is the identity: the file comes out unchanged
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o" / "b.png")), np.asarray(Image.open(photos / "b.png")))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    r = run("enhance", photos / "b.png", "-o", tmp_path / "o2", "--weights", tmp_path / "junk.pt")
    assert r.exit_code == 1 and "junk.pt" in r.output


def test_tools_take_a_bundled_name_an_old_alias_or_a_weights_file(tmp_path):
    from sharpkd.training import RunSpec, save_atomic, weights_file

    assert pretrained.load_name_or_file("fast").name == "fast"
    assert pretrained.load_name_or_file("student").name == "x4"
    model = Student(StudentConfig(channels=8, blocks=1))
    save_atomic(weights_file(RunSpec("student", model.config.to_dict(), "x", 4), model.state_dict(), {}), tmp_path / "mine.pt")
    assert pretrained.load_name_or_file(str(tmp_path / "mine.pt")).source == str(tmp_path / "mine.pt")
    with pytest.raises(pretrained.WeightsError, match="not found"):
        pretrained.load_name_or_file(str(tmp_path / "general"))  # a path, not the bundled name


def test_bundled_weights_checksum_is_checked(monkeypatch):
    spec = pretrained.bundled_spec("student")
    assert spec.sha256 == pretrained.sha256(pretrained.WEIGHTS_DIR / spec.file)
    pretrained._load_bundled.cache_clear()
    monkeypatch.setattr(pretrained, "sha256", lambda p: "0" * 64)
    with pytest.raises(pretrained.WeightsError, match="checksum"):
        pretrained.load("student")
    pretrained._load_bundled.cache_clear()


def test_device_cuda_without_gpu_is_a_clear_error(photos, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = run("enhance", photos, "-o", tmp_path / "o", "--device", "cuda")
    assert r.exit_code == 1 and "CUDA" in r.output


def test_plan_refuses_name_clashes(tmp_path, photo):
    (tmp_path / "in").mkdir()
    Image.fromarray(photo).save(tmp_path / "in" / "x.jpg")
    Image.fromarray(photo).save(tmp_path / "in" / "x.png")
    plan = batch.plan_batch([tmp_path / "in"], tmp_path / "out", batch.Options(format="png"))
    assert len(plan.jobs) == 1 and "already the output" in plan.refused[0][1]


def test_write_bundle_round_trips_through_the_checked_loader(tmp_path, monkeypatch):
    from sharpkd.training import RunSpec, save_atomic, weights_file

    model = Student(StudentConfig(channels=8, blocks=2))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    spec = RunSpec("student", model.config.to_dict(), "x", 4)
    save_atomic(weights_file(spec, model.state_dict(), {}), tmp_path / "model.pt")
    written = pretrained.write_bundle(tmp_path / "model.pt", "tiny", "test", {"steps": 1}, {"gain": 0.5}, tmp_path, 12, "measured")
    spec = json.loads((tmp_path / "tiny.json").read_text())
    assert spec["sha256"] == written.sha256 and (spec["context"], spec["context_note"]) == (12, "measured")
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    pretrained._load_bundled.cache_clear()
    loaded = pretrained.load("tiny")
    x = torch.rand(1, 3, 16, 16)
    # same weights; the loaded copy runs channels-last, which may round differently in the last bit
    torch.testing.assert_close(loaded.model(x), model.eval()(x), atol=1e-5, rtol=0)
    pretrained._load_bundled.cache_clear()


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sharpkd", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "enhance" in r.stdout and "distill" in r.stdout


def test_bundled_teacher_runs_and_verbose_names_it(photos, tmp_path):
    r = run("enhance", photos / "b.png", "-o", tmp_path / "t", "--model", "teacher", "-v")
    assert r.exit_code == 0, r.output
    assert "model: teacher" in r.output and (tmp_path / "t" / "b.png").exists()
