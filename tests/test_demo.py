"""``sharpkd demo``: the main job on scikit-image's photos with the bundled default (general) model."""

from click.testing import CliRunner
from PIL import Image

from sharpkd import pretrained
from sharpkd.cli import main
from sharpkd.demo import run_demo


def test_demo_writes_figures_and_a_table(tmp_path):
    r = CliRunner().invoke(main, ["demo", "-o", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["astronaut-sharp.png", "astronaut.png", "chelsea.png", "coffee.png", "rocket.png"]
    assert "gain dB" in r.output and "mean" in r.output and "border 4 px" in r.output
    assert "astronaut, already sharp: output" in r.output and "left alone" in r.output.split("already sharp")[1]
    fig = Image.open(tmp_path / "demo" / "coffee.png")
    assert fig.width > 3 * 400  # degraded | sharpkd | original, each at most 420 px wide


def test_demo_rows_show_the_bundled_models_help(tmp_path):
    for name in ("general", "x4"):
        rows = run_demo(pretrained.load(name), tmp_path, photos=("astronaut", "chelsea"), sharp=False)
        assert all(r.gain > 0.3 for r in rows), name
        assert all(r.out_ssim > r.lq_ssim for r in rows), name


def test_demo_shows_the_default_leaves_a_sharp_photo_alone_and_x4_does_not(tmp_path):
    general = run_demo(pretrained.load("general"), tmp_path / "g", photos=())
    x4 = run_demo(pretrained.load("x4"), tmp_path / "x", photos=())
    assert general[0].out_psnr >= 40 > x4[0].out_psnr
