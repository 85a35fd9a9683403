"""``sharpkd demo``: the main job on scikit-image's photos with the bundled student."""

from click.testing import CliRunner
from PIL import Image

from sharpkd import pretrained
from sharpkd.cli import main
from sharpkd.demo import run_demo


def test_demo_writes_figures_and_a_table(tmp_path):
    r = CliRunner().invoke(main, ["demo", "-o", str(tmp_path / "demo")])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert names == ["astronaut.png", "chelsea.png", "coffee.png", "rocket.png"]
    assert "gain dB" in r.output and "mean" in r.output and "border 4 px" in r.output
    fig = Image.open(tmp_path / "demo" / "coffee.png")
    assert fig.width > 3 * 400  # degraded | sharpkd | original, each at most 420 px wide


def test_demo_rows_show_the_bundled_student_helps(tmp_path):
    rows = run_demo(pretrained.load("student"), tmp_path, photos=("astronaut", "chelsea"))
    assert all(r.gain > 0.3 for r in rows)
    assert all(r.out_ssim > r.lq_ssim for r in rows)
