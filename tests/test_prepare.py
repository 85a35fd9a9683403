"""``sharpkd prepare``: DIV2K layouts, any folder, sample photos, manifest, resume, skips, workers."""

import json

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image

from sharpkd import paths, prepare
from sharpkd.cli import main
from sharpkd.degrade import degrade
from sharpkd.pairs import load_split


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def hr_images(folder, n, size=(136, 160), start=0):
    folder.mkdir(parents=True, exist_ok=True)
    src = skimage.data.astronaut()
    for i in range(start, start + n):
        Image.fromarray(np.ascontiguousarray(src[i * 20 : i * 20 + size[0], i * 10 : i * 10 + size[1]])).save(folder / f"{i:04d}.png")


def manifest(name):
    return json.loads((paths.datasets_dir() / name / "manifest.json").read_text())


def test_div2k_layout_with_both_splits(tmp_path):
    hr_images(tmp_path / "DIV2K" / "DIV2K_train_HR", 3)
    hr_images(tmp_path / "DIV2K" / "DIV2K_valid_HR", 2, start=3)
    r = run("prepare", "--div2k", tmp_path / "DIV2K")
    assert r.exit_code == 0, r.output
    m = manifest("div2k")
    assert m["counts"] == {"train": 3, "val": 2}
    assert m["split"]["val"] == ["0003", "0004"]
    assert m["recipe"]["sigma"] == 1.0 and m["recipe"]["scale"] == 4 and "BICUBIC" in m["recipe"]["resize"]
    assert all(len(e["sha256"]) == 64 for e in m["entries"])
    # the stored pair is exactly the recipe applied to the source
    pair = load_split(paths.datasets_dir() / "div2k", "train")[0]
    want_hr, want_lq = degrade(np.asarray(Image.open(tmp_path / "DIV2K" / "DIV2K_train_HR" / "0000.png")))
    np.testing.assert_array_equal(pair.hr, want_hr)
    np.testing.assert_array_equal(pair.lq, want_lq)


@pytest.mark.parametrize("layout", ["train-only", "folder-itself"])
def test_div2k_single_folder_holds_out_the_last_images(tmp_path, layout):
    folder = tmp_path / "DIV2K" / "DIV2K_train_HR"
    hr_images(folder, 4)
    r = run("prepare", "--div2k", tmp_path / "DIV2K" if layout == "train-only" else folder, "--val-count", "1")
    assert r.exit_code == 0, r.output
    assert manifest("div2k")["split"] == {"train": ["0000", "0001", "0002"], "val": ["0003"]}


def test_div2k_path_without_images_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("prepare", "--div2k", tmp_path / "empty")
    assert r.exit_code == 1 and "no DIV2K images found" in r.output and "DIV2K_train_HR" in r.output
    r = run("prepare", "--div2k", tmp_path / "missing")
    assert r.exit_code == 1 and "not a folder" in r.output


def test_exactly_one_source_is_required(tmp_path):
    assert run("prepare").exit_code == 2
    assert run("prepare", "--sample", "--images", tmp_path).exit_code == 2


def test_unreadable_and_small_files_are_skipped_with_the_reason(tmp_path):
    hr_images(tmp_path / "hr", 3)
    (tmp_path / "hr" / "0001b.png").write_bytes(b"broken")
    Image.fromarray(np.zeros((64, 300, 3), np.uint8)).save(tmp_path / "hr" / "0001c.png")
    r = run("prepare", "--images", tmp_path / "hr", "--name", "x", "--val-count", "1")
    assert r.exit_code == 0, r.output
    assert "0001b.png" in r.output and "0001c.png" in r.output and "smaller than the 128 px" in r.output
    m = manifest("x")
    assert {e["name"]: e.get("skipped", "") != "" for e in m["entries"]} == {"0000": False, "0001": False, "0001b": True, "0001c": True, "0002": False}
    assert m["counts"] == {"train": 2, "val": 1}


def test_rerun_skips_finished_files_and_resumes_missing_ones(tmp_path):
    hr_images(tmp_path / "hr", 3)
    assert run("prepare", "--images", tmp_path / "hr", "--name", "x", "--val-count", "1").exit_code == 0
    lq = paths.datasets_dir() / "x" / "train" / "lq" / "0000.png"
    stamp = lq.stat().st_mtime_ns
    (paths.datasets_dir() / "x" / "train" / "hr" / "0001.png").unlink()  # as if interrupted
    r = run("prepare", "--images", tmp_path / "hr", "--name", "x", "--val-count", "1")
    assert r.exit_code == 0 and "1 sources written, 2 already there" in r.output
    assert lq.stat().st_mtime_ns == stamp
    r = run("prepare", "--images", tmp_path / "hr", "--name", "x", "--val-count", "1", "--sigma", "0.5")
    assert r.exit_code == 1 and "different settings" in r.output


def test_subimages_and_workers(tmp_path):
    hr_images(tmp_path / "hr", 3, size=(200, 264))
    r = run("prepare", "--images", tmp_path / "hr", "--name", "s", "--val-count", "1", "--subimage", "128", "--step", "64", "--workers", "2")
    assert r.exit_code == 0, r.output
    pairs = load_split(paths.datasets_dir() / "s", "train")
    assert all(p.hr.shape == (128, 128, 3) for p in pairs)
    # 200 rows -> starts 0, 64, 72; 264 cols -> 0, 64, 128, 136: 12 crops per image, edges included
    assert len(pairs) == 2 * 12 == manifest("s")["counts"]["train"]


def test_sample_photos_and_out_option(tmp_path):
    r = run("prepare", "--sample", "--out", tmp_path / "data")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "data" / "datasets" / "sample" / "manifest.json").read_text())
    assert m["split"]["val"] == [prepare.SAMPLE_PHOTOS[-1]] and len(m["split"]["train"]) == len(prepare.SAMPLE_PHOTOS) - 1
    assert m["entries"][0]["source"].startswith("skimage.data.")


def test_photo_groups_follow_the_crop_names():
    assert prepare.photo_group("deepin_aurora_2") == "deepin_aurora"
    assert prepare.photo_group("wall_snow-capped_mountain_r1c4") == "wall_snow-capped_mountain"
    assert prepare.photo_group("bsds_100075") == "bsds_100075"  # source_photo without a crop number
    assert prepare.photo_group("t91_tt14") == "t91_tt14"


def test_several_folders_with_a_by_photo_holdout(tmp_path):
    hr_images(tmp_path / "scenes", 4)
    crops = tmp_path / "crops"
    hr_images(crops, 6)
    for i, p in enumerate(sorted(crops.iterdir())):  # 3 photos of 2 crops each: src_p0_1, src_p0_2, ...
        p.rename(crops / f"src_p{i // 2}_{i % 2 + 1}.png")
    r = run("prepare", "--images", tmp_path / "scenes", "--images", crops, "--val", "last:1", "--val", "groups:2", "--name", "mix")
    assert r.exit_code == 0, r.output
    m = manifest("mix")
    # every 2nd photo group (sorted) is validation, both crops of it: p0 and p2; the scenes keep their last
    assert m["split"]["val"] == ["0003", "src_p0_1", "src_p0_2", "src_p2_1", "src_p2_2"]
    assert m["holdout"] == {"scenes": "last:1", "crops": "groups:2"}
    assert {e["part"] for e in m["entries"]} == {"scenes", "crops"}
    r = run("prepare", "--images", tmp_path / "scenes", "--images", crops, "--val", "last:1", "--val", "x", "--name", "bad")
    assert r.exit_code == 1 and "last:N" in r.output
    r = run("prepare", "--images", tmp_path / "scenes", "--images", crops, "--val", "last:1", "--val", "last:1", "--val", "last:1")
    assert r.exit_code == 2 and "one per --images folder" in r.output


def test_clashing_names_across_folders_are_refused(tmp_path):
    hr_images(tmp_path / "a", 2)
    hr_images(tmp_path / "b", 2)
    r = run("prepare", "--images", tmp_path / "a", "--images", tmp_path / "b", "--val", "last:1")
    assert r.exit_code == 1 and "share the name" in r.output
