"""``sharpkd score``: pairing by name, tables, CSV/JSON, worst list, figures, and the bad cases."""

import csv
import json
import math

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image

from sharpkd import metrics, score
from sharpkd.cli import main
from sharpkd.degrade import degrade


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture
def folders(tmp_path):
    """gt/ (originals), lq/ (degraded), out/ (a slightly better guess) for two photos, mixed formats."""
    gt, lq, out = (tmp_path / n for n in ("gt", "lq", "out"))
    for d in (gt, lq, out, gt / "trip", lq / "trip", out / "trip"):
        d.mkdir(parents=True, exist_ok=True)
    photos = {"a": skimage.data.astronaut()[:128, :160], "trip/b": skimage.data.coffee()[:96, :128]}
    truth = {}
    for name, img in photos.items():
        hr, degraded = degrade(np.ascontiguousarray(img))
        better = np.round(0.5 * hr.astype(float) + 0.5 * degraded.astype(float)).astype(np.uint8)
        Image.fromarray(hr).save(gt / f"{name}.png")
        Image.fromarray(degraded).save(lq / f"{name}.png")
        Image.fromarray(better).save(out / f"{name}.tif")  # another format: paired by stem
        truth[name] = (hr, degraded, better)
    return gt, lq, out, truth


def test_pairs_by_name_and_matches_the_metrics_module(folders):
    gt, lq, out, truth = folders
    report = score.score_folders(out, gt, lq)
    assert [r.name for r in report.rows] == ["a", "trip/b"]
    for r in report.rows:
        hr, degraded, better = truth[r.name]
        assert r.psnr == pytest.approx(metrics.psnr(better, hr))
        assert r.ssim == pytest.approx(metrics.ssim(better, hr))
        assert r.base_psnr == pytest.approx(metrics.psnr(degraded, hr))
        assert r.gain > 0
    assert report.mean()["images"] == 2


def test_cli_table_csv_json_worst_and_figures(folders, tmp_path):
    gt, lq, out, _ = folders
    r = run("score", out, gt, "--baseline", lq, "--csv", tmp_path / "s.csv", "--json", tmp_path / "s.json",
            "--worst", "1", "--figure", tmp_path / "fig")
    assert r.exit_code == 0, r.output
    assert "Y (BT.601" in r.output and "border 4 px" in r.output  # the convention is in the header
    assert "mean of 2" in r.output and "worst 1:" in r.output
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [row["image"] for row in rows] == ["a", "trip/b", "MEAN"]
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["convention"]["crop"] == 4 and len(data["rows"]) == 2
    assert float(rows[0]["psnr"]) == pytest.approx(data["rows"][0]["psnr"])
    fig = Image.open(tmp_path / "fig" / "a.png")
    assert fig.width > 3 * 128 and fig.height > 128  # three panels, plus a zoomed row


def test_rgb_and_crop_options_change_the_convention(folders):
    gt, lq, out, truth = folders
    report = score.score_folders(out, gt, None, metrics.Convention(rgb=True, crop=0))
    hr, _, better = truth["a"]
    assert report.rows[0].psnr == pytest.approx(metrics.psnr(better, hr, metrics.Convention(rgb=True, crop=0)))
    r = run("score", out, gt, "--rgb", "--crop", "0")
    assert r.exit_code == 0 and "RGB, border 0 px" in r.output


def test_unmatched_and_mismatched_are_reported_not_crashed(folders):
    gt, lq, out, _ = folders
    Image.fromarray(np.zeros((50, 60, 3), np.uint8)).save(out / "extra.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(gt / "lonely.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(out / "trip" / "b.tif")  # wrong size now
    r = run("score", out, gt)
    assert r.exit_code == 0, r.output
    assert "extra.png" in r.output and "no ground truth" in r.output
    assert "lonely.png" in r.output and "no output" in r.output
    report = score.score_folders(out, gt)
    bad = [row for row in report.rows if row.error]
    assert [row.name for row in bad] == ["trip/b"] and "differs" in bad[0].error
    assert report.mean()["images"] == 1


def test_identical_folders_give_inf_psnr_in_json(folders, tmp_path):
    gt, _, _, _ = folders
    r = run("score", gt, gt, "--json", tmp_path / "same.json")
    assert r.exit_code == 0
    data = json.loads((tmp_path / "same.json").read_text())
    assert data["rows"][0]["psnr"] == "inf" and data["rows"][0]["ssim"] == pytest.approx(1.0)
    assert math.isinf(score.score_folders(gt, gt).rows[0].psnr)


def test_no_pairs_at_all_is_an_error(tmp_path, folders):
    gt, _, _, _ = folders
    (tmp_path / "empty").mkdir()
    r = run("score", tmp_path / "empty", gt)
    assert r.exit_code == 1 and "no image" in r.output


def test_unreadable_file_is_a_row_error(folders):
    gt, _, out, _ = folders
    (out / "a.tif").write_bytes(b"broken")
    report = score.score_folders(out, gt)
    row = next(r for r in report.rows if r.name == "a")
    assert row.error and "a.tif" in row.error


def test_figure_needs_baseline(folders, tmp_path):
    gt, _, out, _ = folders
    r = run("score", out, gt, "--figure", tmp_path / "f")
    assert r.exit_code == 2 and "--baseline" in r.output
