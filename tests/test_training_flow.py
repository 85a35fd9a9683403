"""The training flow end to end on tiny data: prepare -> train-teacher -> distill --baseline -> enhance."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from click.testing import CliRunner
from PIL import Image

from sharpkd import distill, paths, pretrained
from sharpkd.cli import main

TINY = ["--steps", "3", "--batch-size", "2", "--patch", "32", "--val-every", "2"]


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two modules hold the same tensors under the same names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture
def dataset(two_photos):
    """Two small HR photos (just above the 128 px minimum) prepared as data set 'tiny': one train, one val."""
    r = run("prepare", "--images", two_photos, "--name", "tiny", "--val-count", "1")
    assert r.exit_code == 0, r.output
    return paths.datasets_dir() / "tiny"


def test_smoke_prepare_teacher_distill_baseline_enhance(dataset, tmp_path, photo):
    teacher_run = paths.runs_dir() / "teacher-tiny"
    r = run("train-teacher", "--dataset", "tiny", *TINY, "--channels", "8", "--blocks", "2")
    assert r.exit_code == 0, r.output
    for name in ("model.pt", "last.pt", "config.json", "log.jsonl", "curves.png"):
        assert (teacher_run / name).exists(), name

    r = run("distill", "--dataset", "tiny", *TINY, "--channels", "8", "--blocks", "2", "--baseline")
    assert r.exit_code == 0, r.output
    kd_run = paths.runs_dir() / "student-kd-tiny"
    assert str(teacher_run) in r.output  # the latest trained teacher was picked
    report = json.loads((kd_run / "report.json").read_text())
    names = [e["name"] for e in report["entries"]]
    assert names == ["degraded input (bicubic)", "teacher", "student + KD", "student alone"]
    report_text = (kd_run / "report.md").read_text()
    assert any(v in report_text for v in ("No measurable difference", "Distillation helped", "Distillation hurt")) and "loss: l1 x 1.0, feat_mse x 1.0" in (kd_run / "report.md").read_text()
    assert report["kd_minus_alone_db"] == pytest.approx(report["entries"][2]["psnr_y"] - report["entries"][3]["psnr_y"])
    assert all(e["macs_per_pixel"] > 0 for e in report["entries"][1:])
    # the shipped student has no adapters: the weights file loads as a plain student
    loaded = pretrained.load_file(kd_run)
    assert loaded.arch == "student" and loaded.model.config.channels == 8

    photos = tmp_path / "in"
    photos.mkdir()
    Image.fromarray(photo).save(photos / "p.png")
    r = run("enhance", photos, "-o", tmp_path / "out", "--weights", kd_run, "-q")
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out" / "p.png").size == (photo.shape[1], photo.shape[0])


def test_distill_resumes_and_installs(dataset):
    run("train-teacher", "--dataset", "tiny", *TINY, "--channels", "8", "--blocks", "2")
    kd_run = paths.runs_dir() / "kd"
    assert run("distill", "--dataset", "tiny", "--run", kd_run, *TINY, "--channels", "8", "--blocks", "1").exit_code == 0
    first = torch.load(kd_run / "last.pt", weights_only=True)["step"]
    r = run("distill", "--dataset", "tiny", "--run", kd_run, *TINY[:1], "5", *TINY[2:], "--channels", "8", "--blocks", "1", "--install")
    assert r.exit_code == 0, r.output
    assert "resuming run kd at step 3" in r.output
    assert first == 3 and torch.load(kd_run / "last.pt", weights_only=True)["step"] == 5
    assert paths.installed_student().exists() and "sharpkd reset-default" in r.output
    assert pretrained.load().source == str(paths.installed_student())  # enhance's default now
    r = run("reset-default")
    assert r.exit_code == 0 and "bundled general model again" in r.output
    assert not paths.installed_student().exists() and pretrained.load().name == "general"
    assert len(list(paths.installed_student().parent.glob("*.removed-*"))) == 1  # kept as a backup
    assert "already the bundled" in run("reset-default").output


def test_baseline_starts_from_the_same_weights_and_runs_are_named_by_their_folder(dataset, photo, tmp_path):
    run("train-teacher", "--dataset", "tiny", *TINY, "--channels", "8", "--blocks", "2")
    first = paths.runs_dir() / "s8"
    assert run("train-teacher", "--dataset", "tiny", "--run", first, "--arch", "student", *TINY, "--channels", "8", "--blocks", "1").exit_code == 0
    kd_run = paths.runs_dir() / "kdi"
    r = run("distill", "--dataset", "tiny", "--run", kd_run, *TINY, "--channels", "8", "--blocks", "1", "--init", first, "--baseline")
    assert r.exit_code == 0, r.output
    for folder in (kd_run, kd_run / "baseline"):
        assert json.loads((folder / "config.json").read_text())["spec"]["extra"]["init"] == str(first / "model.pt")
    assert f"starting weights: {first / 'model.pt'} (both students)" in (kd_run / "report.md").read_text()
    Image.fromarray(photo).save(tmp_path / "p.png")
    r = run("enhance", tmp_path / "p.png", "-o", tmp_path / "o", "--weights", kd_run, "-v")
    assert r.exit_code == 0 and "(model: kdi" in r.output


def test_distill_without_teacher_says_what_to_run(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)  # an installation without a bundled teacher
    pretrained._load_bundled.cache_clear()
    r = run("distill", "--dataset", "tiny", *TINY)
    pretrained._load_bundled.cache_clear()
    assert r.exit_code == 1
    assert "sharpkd train-teacher" in r.output


def test_resuming_with_another_architecture_is_refused(dataset):
    run_dir = paths.runs_dir() / "t"
    assert run("train-teacher", "--dataset", "tiny", "--run", run_dir, *TINY, "--channels", "8", "--blocks", "2").exit_code == 0
    r = run("train-teacher", "--dataset", "tiny", "--run", run_dir, *TINY, "--channels", "8", "--blocks", "3")
    assert r.exit_code == 1 and "different model" in r.output


def test_corrupt_checkpoint_is_reported(dataset):
    run_dir = paths.runs_dir() / "t"
    run_dir.mkdir(parents=True)
    (run_dir / "last.pt").write_bytes(b"not a checkpoint")
    r = run("train-teacher", "--dataset", "tiny", "--run", run_dir, *TINY, "--channels", "8", "--blocks", "2")
    assert r.exit_code == 1 and "corrupt" in r.output and "last.pt" in r.output


def test_no_dataset_prepared_says_what_to_run():
    r = run("train-teacher", *TINY)
    assert r.exit_code == 1 and "sharpkd prepare" in r.output


def test_feature_pairs_span_the_teacher_depth():
    assert distill.feature_pairs(4, 12) == [(0, 2), (1, 5), (2, 8), (3, 11)]
    assert distill.feature_pairs(3, 3) == [(0, 0), (1, 1), (2, 2)]
    assert distill.feature_pairs(8, 12)[-1] == (7, 11)


def test_kd_loss_has_gradient_through_adapters_only_on_student_side():
    from sharpkd.models import build

    torch.manual_seed(0)
    s, t = build("student", {"channels": 8, "blocks": 2}), build("teacher", {"channels": 12, "blocks": 4}).eval()
    ad = distill.Adapters(s.feature_channels, t.feature_channels, distill.feature_pairs(2, 4))
    loss_fn = distill.kd_loss(s, t, ad, distill.DistillConfig(lambda_feat=1.0, lambda_out=0.5))
    lq, hr = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss, parts = loss_fn(lq, hr)
    loss.backward()
    assert set(parts) == {"l1", "feat_mse", "out_l1"}
    assert loss.item() == pytest.approx(parts["l1"] + parts["feat_mse"] + 0.5 * parts["out_l1"], rel=1e-5)
    assert all(p.grad is None for p in t.parameters())  # the teacher stays frozen
    assert all(p.grad is not None for p in ad.parameters())


def crops_folder(tmp_path: Path, photo: np.ndarray) -> Path:
    """A folder of three overlapping 200x256 crops of ``photo`` (a tiny set of HR photos to prepare)."""
    src = tmp_path / "hr"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.ascontiguousarray(photo[i * 100 : i * 100 + 200, :256])).save(src / f"{i}.png")
    return src


def test_general_degradations_are_recorded_and_sampled_on_the_fly(tmp_path):
    from sharpkd.pairs import CropSampler, load_split, read_manifest, train_degradations

    src = crops_folder(tmp_path, skimage.data.astronaut())
    r = run("prepare", "--images", src, "--name", "gen", "--val-count", "1", "--degradations", "general")
    assert r.exit_code == 0, r.output
    manifest = read_manifest(paths.datasets_dir() / "gen")
    rng_spec = train_degradations(manifest)
    assert manifest["train_degradations"]["sigma"] == [0.0, 2.0] and rng_spec.sigma == (0.0, 2.0)
    pairs = load_split(paths.datasets_dir() / "gen", "train")
    lq, hq, cond = CropSampler(pairs, 64, 4, seed=0, degradations=rng_spec).batch(0, 64)
    diff = (lq - hq).abs().flatten(1).mean(1)
    assert (diff == 0).any() and (diff > 0.002).sum() > 32  # some crops are clean targets, most degraded
    clean = diff == 0
    # a crop left unchanged is labelled clean (or a blur too slight to move a pixel: sigma < 0.1)...
    assert cond.shape == (64, 4) and (cond[clean][:, 1:] == 0).all() and (cond[clean][:, 0] < 0.05).all()
    assert (cond[diff > 0.002].sum(1) > 0).all() and cond.max() <= 1  # ...and a degraded one as degraded
    # a stage for noise and JPEG: most crops sharp with noise and/or JPEG alone
    r = run("prepare", "--images", src, "--name", "gen-art", "--val-count", "1", "--degradations", "general", "--artifacts-share", "0.7")
    assert r.exit_code == 0, r.output
    art = train_degradations(read_manifest(paths.datasets_dir() / "gen-art"))
    assert art.artifacts_only_share == 0.7 and art.sigma == rng_spec.sigma
    _, _, art_cond = CropSampler(pairs, 64, 4, seed=0, degradations=art).batch(0, 64)
    alone = (art_cond[:, :2] == 0).all(1) & (art_cond[:, 2:] > 0).any(1)
    assert int(alone.sum()) > 32 > int(((cond[:, :2] == 0).all(1) & (cond[:, 2:] > 0).any(1)).sum())
    assert run("prepare", "--images", src, "--name", "x", "--artifacts-share", "0.5").exit_code == 2  # general only
    r = run("train-teacher", "--dataset", "gen", *TINY, "--channels", "8", "--blocks", "1")
    assert r.exit_code == 0, r.output
    config = json.loads((paths.runs_dir() / "teacher-gen" / "config.json").read_text())
    assert config["spec"]["extra"]["train_degradations"]["jpeg_quality"] == [30, 95]
    # the general model: trained with crop-making worker processes, then its blur estimate calibrated
    r = run("train-teacher", "--arch", "general", "--dataset", "gen", *TINY, "--channels", "8", "--blocks", "1", "--workers", "1")
    assert r.exit_code == 0, r.output
    run_dir = paths.runs_dir() / "general-gen"
    assert json.loads((run_dir / "config.json").read_text())["train"]["workers"] == 1
    assert "blur_knots" in (run_dir / "log.jsonl").read_text().splitlines()[-1]
    loaded = pretrained.load_file(run_dir)
    assert loaded.arch == "general" and loaded.model.estimator.blur_knots[1, 0] == 0
    out = tmp_path / "out"
    r = run("enhance", src / "0.png", "-o", out, "--weights", run_dir, "-v")
    assert r.exit_code == 0 and (out / "0.png").exists() and "estimated blur" in r.output
    # a smaller general model distilled from that one: output distillation only, estimator taken over
    r = run("train-teacher", "--arch", "general", "--dataset", "gen", *TINY, "--channels", "8", "--blocks", "1",
            "--linear-estimate", "--balance-loss", "--init", run_dir, "--run", paths.runs_dir() / "linear")
    assert r.exit_code == 0, r.output
    spec = json.loads((paths.runs_dir() / "linear" / "config.json").read_text())["spec"]
    assert spec["model_config"]["linear_estimate"] and spec["extra"]["init_taken"] == "body + estimator features"
    assert spec["loss"]["balance_floor"] == 0.01 and "balance_floor" not in json.loads((run_dir / "config.json").read_text())["spec"]["loss"]
    assert run("train-teacher", "--arch", "student", "--dataset", "gen", *TINY, "--balance-loss").exit_code == 2
    assert pretrained.load_file(paths.runs_dir() / "linear").model.estimator.linear
    # leaky ReLUs on the same body shape: its weights are taken, the ReLUs leak from then on
    r = run("train-teacher", "--arch", "general", "--dataset", "gen", *TINY, "--channels", "8", "--blocks", "1",
            "--linear-estimate", "--negative-slope", "0.1", "--init", run_dir, "--run", paths.runs_dir() / "leaky")
    assert r.exit_code == 0, r.output
    spec = json.loads((paths.runs_dir() / "leaky" / "config.json").read_text())["spec"]
    assert spec["model_config"]["negative_slope"] == 0.1
    assert spec["extra"]["init_taken"] == "body (ReLU slope 0 -> 0.1) + estimator features"
    assert pretrained.load_file(paths.runs_dir() / "leaky").model.net.config.negative_slope == 0.1
    assert run("train-teacher", "--dataset", "gen", *TINY, "--negative-slope", "0.1").exit_code == 2  # not for the teacher
    r = run("distill", "--dataset", "gen", "--teacher", run_dir, *TINY, "--channels", "4", "--blocks", "1")
    assert r.exit_code == 1 and "--lambda-feat 0" in r.output
    small = paths.runs_dir() / "small"
    r = run("distill", "--dataset", "gen", "--teacher", run_dir, *TINY, "--channels", "4", "--blocks", "1",
            "--lambda-feat", "0", "--lambda-out", "1", "--run", small, "--baseline")
    assert r.exit_code == 0, r.output
    spec = json.loads((small / "config.json").read_text())["spec"]
    assert spec["arch"] == "general" and spec["loss"]["out_l1"] == 1 and spec["extra"]["init_taken"] == "estimator"
    assert all("out_l1" in json.loads(line) for line in (small / "log.jsonl").read_text().splitlines() if '"loss"' in line)
    base = json.loads((small / "baseline" / "config.json").read_text())["spec"]
    assert base["arch"] == "general" and "out_l1" not in base["loss"] and base["model_config"] == spec["model_config"]
    assert base["extra"]["init_taken"] == "estimator"  # the same starting weights as the distilled one
    assert pretrained.load_file(small).model.config.channels == 4 and (small / "report.md").exists()
    r = run("distill", "--dataset", "gen", "--teacher", run_dir, *TINY, "--channels", "4", "--blocks", "1",
            "--lambda-feat", "0", "--lambda-out", "1", "--run", paths.runs_dir() / "small-linear", "--linear-estimate",
            "--no-calibrate")
    assert r.exit_code == 0, r.output
    spec = json.loads((paths.runs_dir() / "small-linear" / "config.json").read_text())["spec"]
    assert spec["model_config"]["linear_estimate"] and spec["extra"]["init_taken"] == "estimator features"
    assert "blur_knots" not in (paths.runs_dir() / "small-linear" / "log.jsonl").read_text()  # left for later
    assert "blur_knots" in (small / "log.jsonl").read_text()  # calibrated by default
    # a narrower general model cut from that one (tools/prune.py), then distilled with its estimator kept
    cut = tmp_path / "cut.pt"
    tool = Path(__file__).parent.parent / "tools" / "prune.py"
    done = subprocess.run([sys.executable, tool, small, "--channels", "2", "--dataset", "gen", "--crops", "2", "--out", cut],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    wide, narrow = pretrained.load_file(small).model, pretrained.load_file(cut).model
    assert narrow.config.channels == 2 and narrow.config.blocks == 1 and "stream: kept" in done.stdout
    assert same_weights(narrow.estimator, wide.estimator)
    # a whole-photo scale head (tools/fit_scale.py), fitted, then refitted or copied onto a model that has one
    fit_tool = Path(__file__).parent.parent / "tools" / "fit_scale.py"

    def fit_scale(*args):
        return subprocess.run([sys.executable, fit_tool, *map(str, args)], capture_output=True, text=True, timeout=300, check=False)

    headed, again = tmp_path / "headed.pt", tmp_path / "again.pt"
    done = fit_scale(small, "--dataset", "gen", "--every", "1", "--steps", "5", "--out", headed)
    assert done.returncode == 0, done.stdout + done.stderr
    assert pretrained.load_file(headed).model.estimator.scale_head is not None
    done = fit_scale(headed, "--dataset", "gen", "--every", "1", "--steps", "2", "--out", again)  # fitted again
    assert done.returncode == 0, done.stdout + done.stderr
    head, other = (pretrained.load_file(f).model.estimator.scale_head[0].weight for f in (headed, again))
    assert not torch.equal(head, other)
    done = fit_scale(again, "--head-from", headed, "--out", again)  # the base's own head is replaced by the donor's
    assert done.returncode == 0, done.stdout + done.stderr
    assert torch.equal(pretrained.load_file(again).model.estimator.scale_head[0].weight, head)
    done = fit_scale(run_dir, "--head-from", headed, "--out", again)  # another estimator: refused
    assert done.returncode != 0 and "not a pooled scale head on the same estimator" in done.stderr
    # a cut of a model with a scale head and a cleanup stage keeps both as they are
    config = {**pretrained.load_file(headed).model.config.to_dict(), "cleanup_channels": 4}
    full = distill.models.build("general", config)
    assert full.load_state_dict(pretrained.load_file(headed).model.state_dict(), strict=False).missing_keys[0].startswith("cleanup.")
    torch.save({"arch": "general", "config": config, "state_dict": full.state_dict()}, tmp_path / "full.pt")
    done = subprocess.run([sys.executable, tool, tmp_path / "full.pt", "--channels", "2", "--dataset", "gen", "--crops", "2",
                           "--out", tmp_path / "full-cut.pt"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    full_cut = pretrained.load_file(tmp_path / "full-cut.pt").model
    assert full_cut.config.channels == 2 and full_cut.config.cleanup_channels == 4
    for part in ("estimator", "cleanup"):
        ours, theirs = getattr(full_cut, part).state_dict(), getattr(full, part).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), part
    kept = paths.runs_dir() / "kept"
    r = run("distill", "--dataset", "gen", "--teacher", small, *TINY, "--channels", "2", "--blocks", "1",
            "--lambda-feat", "0", "--lambda-out", "1", "--init", cut, "--keep-estimator", "--run", kept, "--baseline")
    assert r.exit_code == 0, r.output
    for run_dir in (kept, kept / "baseline"):  # the distilled one and the one trained alone
        spec = json.loads((run_dir / "config.json").read_text())["spec"]
        assert spec["extra"]["init_taken"] == "all" and spec["extra"]["keep_estimator"] and spec["loss"]["estimator_quantile"] == 0
        assert "blur_knots" not in (run_dir / "log.jsonl").read_text()  # the calibration came with the estimator
        trained = pretrained.load_file(run_dir).model
        assert same_weights(trained.estimator, wide.estimator)
        assert not same_weights(trained.net, narrow.net)
    assert run("train-teacher", "--arch", "general", "--dataset", "gen", *TINY, "--keep-estimator").exit_code == 2  # no --init
    r = run("distill", "--dataset", "gen", "--teacher", "bundled", *TINY, "--keep-estimator")
    assert r.exit_code == 2 and "general student" in r.output


def test_a_student_cut_narrower_computes_the_wide_one_with_channels_zeroed_and_trains_on(dataset, tmp_path):
    wide_run, cut = paths.runs_dir() / "wide", tmp_path / "cut.pt"
    assert run("train-teacher", "--dataset", "tiny", "--run", wide_run, "--arch", "student", *TINY, "--channels", "6", "--blocks", "2").exit_code == 0
    tool = Path(__file__).parent.parent / "tools" / "prune.py"
    done = subprocess.run([sys.executable, tool, wide_run, "--channels", "3", "--dataset", "tiny", "--crops", "2", "--out", cut],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    wide, narrow = pretrained.load_file(wide_run).model, pretrained.load_file(cut)
    assert narrow.arch == "student" and narrow.model.config.channels == 3 and narrow.model.config.blocks == 2
    kept = torch.load(cut, weights_only=True)["pruned"]
    stream, inner = torch.zeros(6), [torch.zeros(6), torch.zeros(6)]
    stream[kept["stream"]] = 1
    for mask, keep in zip(inner, kept["inner"]):
        mask[keep] = 1
    spec = importlib.util.spec_from_file_location("prune_tool", tool)
    prune_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prune_tool)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(narrow.model(x), prune_tool.masked_forward(wide, x, None, stream, inner), atol=1e-6)
    # the cut student distils from a teacher like any other
    teacher = paths.runs_dir() / "teacher-for-cut"
    assert run("train-teacher", "--dataset", "tiny", "--run", teacher, *TINY, "--channels", "8", "--blocks", "1").exit_code == 0
    r = run("distill", "--dataset", "tiny", "--teacher", teacher, *TINY, "--init", cut, "--channels", "3", "--blocks", "2",
            "--lambda-feat", "0", "--lambda-out", "1", "--run", paths.runs_dir() / "cut-kd")
    assert r.exit_code == 0, r.output
    assert json.loads((paths.runs_dir() / "cut-kd" / "config.json").read_text())["spec"]["extra"]["init_taken"] == "all"


def test_ctrl_c_saves_a_checkpoint_and_the_next_run_resumes(dataset):
    from sharpkd.train_teacher import train
    from sharpkd.training import TrainConfig

    run_dir = paths.runs_dir() / "interrupted"
    cfg = TrainConfig(steps=6, batch_size=2, patch=32, val_every=100, warmup=1)

    def interrupt_at_4(step, total, parts):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(dataset, run_dir, cfg, "student", {"channels": 8, "blocks": 1}, on_step=interrupt_at_4)
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == 4
    steps_seen = []
    train(dataset, run_dir, cfg, "student", {"channels": 8, "blocks": 1}, on_step=lambda s, t, p: steps_seen.append(s))
    assert steps_seen == [5, 6] and (run_dir / "model.pt").exists()


def test_init_starts_a_new_run_from_earlier_weights(dataset):
    from sharpkd.training import TrainError, warm_start

    first = paths.runs_dir() / "first"
    assert run("train-teacher", "--dataset", "tiny", "--run", first, "--arch", "student", *TINY, "--channels", "8", "--blocks", "1").exit_code == 0
    earlier = pretrained.load_file(first).model
    fresh = distill.models.build("student", {"channels": 8, "blocks": 1})
    warm_start(fresh, earlier, "first")
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(fresh.eval()(x), earlier(x), atol=1e-5, rtol=0)  # earlier runs channels-last
    with pytest.raises(TrainError, match="--init"):
        warm_start(distill.models.build("student", {"channels": 8, "blocks": 2}), earlier, "first")
    # a general model of another body shape takes only the estimator
    general = distill.models.build("general", {"channels": 8, "blocks": 1, "estimator_channels": 4})
    other = distill.models.build("general", {"channels": 4, "blocks": 2, "estimator_channels": 4})
    body = {k: v.clone() for k, v in other.net.state_dict().items()}
    assert warm_start(other, general, "general") == "estimator"
    for k, v in general.estimator.state_dict().items():
        torch.testing.assert_close(other.estimator.state_dict()[k], v)
    for k, v in other.net.state_dict().items():
        torch.testing.assert_close(v, body[k])
    with pytest.raises(TrainError, match="--init"):
        warm_start(distill.models.build("general", {"estimator_channels": 8}), general, "general")
    # the same body with a linear estimate: body and estimator convolutions taken, the head starts at zero
    linear = distill.models.build("general", {"channels": 8, "blocks": 1, "estimator_channels": 4, "linear_estimate": True})
    assert warm_start(linear, general, "general") == "body + estimator features"
    torch.testing.assert_close(linear.net.head.weight, general.net.head.weight)
    torch.testing.assert_close(linear.estimator.features[0].weight, general.estimator.features[0].weight)
    assert not linear.estimator.head.weight.any() and linear.estimator.linear
    r = run("train-teacher", "--dataset", "tiny", "--run", paths.runs_dir() / "second", "--arch", "student", *TINY,
            "--channels", "8", "--blocks", "1", "--init", first)
    assert r.exit_code == 0, r.output
    config = json.loads((paths.runs_dir() / "second" / "config.json").read_text())
    assert config["spec"]["extra"]["init"].endswith("model.pt")
    r = run("train-teacher", "--dataset", "tiny", "--run", paths.runs_dir() / "third", *TINY, "--channels", "8", "--blocks", "2", "--init", first)
    assert r.exit_code == 1 and "--init" in r.output


def test_ema_copies_during_warmup_then_ramps_up_to_its_cap():
    from sharpkd.training import TrainConfig, ema_decay

    cfg = TrainConfig(warmup=10, ema=0.999)
    assert ema_decay(0, cfg) == ema_decay(9, cfg) == 0.0
    ramp = [ema_decay(s, cfg) for s in range(10, 20000, 50)]
    assert ramp[0] == pytest.approx(0.1) and all(a <= b for a, b in zip(ramp, ramp[1:])) and ramp[-1] == 0.999
    assert ema_decay(510, cfg) < 0.99  # a 500-step run's EMA follows its recent weights


def test_sigterm_during_training_saves_a_checkpoint(dataset):
    import os
    import signal

    from sharpkd.cli_train import run_training
    from sharpkd.train_teacher import train
    from sharpkd.training import TrainConfig

    run_dir = paths.runs_dir() / "terminated"
    cfg = TrainConfig(steps=6, batch_size=2, patch=32, val_every=100, warmup=1)

    def kill_at_3(step, total, parts):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as stop:
            run_training("t", lambda on_step: train(dataset, run_dir, cfg, "student", {"channels": 8, "blocks": 1},
                                                   on_step=lambda *a: (on_step(*a), kill_at_3(*a))))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stop.value.code == 130
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == 3


def test_distill_from_the_bundled_teacher(dataset):
    r = run("distill", "--dataset", "tiny", *TINY, "--channels", "8", "--blocks", "2", "--teacher", "bundled")
    assert r.exit_code == 0, r.output
    config = json.loads((paths.runs_dir() / "student-kd-tiny" / "config.json").read_text())
    assert config["spec"]["extra"]["teacher"] == "bundled teacher.pt"
    assert config["spec"]["extra"]["feature_pairs"][-1] == [1, 11]  # 2 student blocks against 12 teacher blocks


def test_a_student_teaches_a_smaller_student(dataset):
    """A teacher assistant: the bundled x4 teaches a narrower student, features and output."""
    r = run("distill", "--dataset", "tiny", *TINY, "--channels", "4", "--blocks", "2", "--teacher", "bundled-x4",
            "--lambda-out", "1", "--run", paths.runs_dir() / "from-x4")
    assert r.exit_code == 0, r.output
    extra = json.loads((paths.runs_dir() / "from-x4" / "config.json").read_text())["spec"]["extra"]
    assert extra["teacher"] == "bundled x4.pt" and extra["teacher_config"] == pretrained.load("x4").model.config.to_dict()
    assert extra["feature_pairs"] == [[0, 3], [1, 7]]  # 2 student blocks against the x4's 8
    assert pretrained.load_file(paths.runs_dir() / "from-x4").model.config.channels == 4
    # a student trained here serves as well (a run folder)
    r = run("distill", "--dataset", "tiny", *TINY, "--channels", "2", "--blocks", "1", "--teacher", paths.runs_dir() / "from-x4",
            "--lambda-out", "1", "--run", paths.runs_dir() / "from-small")
    assert r.exit_code == 0, r.output
    assert json.loads((paths.runs_dir() / "from-small" / "config.json").read_text())["spec"]["extra"]["teacher_config"]["channels"] == 4


def test_train_gpu_tool_fits_steps_to_the_budget_and_stops_at_the_deadline(dataset, tmp_path):
    """tools/train_gpu.py (how the bundled weights were trained), run on the CPU with a tiny job."""
    tool = Path(__file__).parent.parent / "tools" / "train_gpu.py"
    out = tmp_path / "gpu"
    job = "s=train-teacher --arch student --dataset tiny --channels 8 --blocks 1 --batch-size 2 --patch 32 --val-every 1000"
    done = subprocess.run([sys.executable, tool, job, "--budget", "0.1", "--probe", "50", "--out", out, "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    plan = json.loads(done.stdout.splitlines()[0])
    assert plan["steps"] == {"s": 100} and plan["seconds_per_step"]["s"] > 0  # at least 100 steps
    assert json.loads((out / "runs" / "s" / "config.json").read_text())["train"]["steps"] == 100
    assert pretrained.load_file(out / "runs" / "s").arch == "student"
    stopped = subprocess.run([sys.executable, tool, job.replace("--val-every 1000", "--val-every 100000"), "--budget", "10000",
                              "--probe", "50", "--deadline", "0", "--out", tmp_path / "cut", "--device", "cpu"],
                             capture_output=True, text=True, timeout=300)
    # a budget of 10,000 s, but the deadline has passed once the probe is done: the run is stopped at once
    assert stopped.returncode == 1 and '"failed_or_stopped": ["s"]' in stopped.stdout


def test_report_verdict_calls_a_difference_inside_the_seed_spread_no_difference():
    from sharpkd.report import NO_DIFFERENCE_DB, Entry, verdict

    def entry(psnr):
        return Entry("x", psnr, 0.9, 1.0, 1, 1.0, None)

    assert verdict(entry(30.02), entry(30.0)).startswith("No measurable difference")
    assert verdict(entry(30.0), entry(30.02)).startswith("No measurable difference")
    assert verdict(entry(30.0 + 2 * NO_DIFFERENCE_DB), entry(30.0)).startswith("Distillation helped")
    assert verdict(entry(30.0), entry(30.0 + 2 * NO_DIFFERENCE_DB)).startswith("Distillation hurt")


def test_to_tensor_takes_strided_writeable_and_read_only_arrays():
    """NumPy 2 raises for np.array(copy=False) when a copy is needed; both kinds must work on 1 and 2."""
    from sharpkd.pairs import to_tensor

    a = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    strided = a[:, ::2]  # writeable, not contiguous
    assert strided.flags.writeable and not strided.flags.c_contiguous
    read_only = a.copy()
    read_only.flags.writeable = False
    for x in (strided, read_only, a):
        t = to_tensor(x)
        assert t.shape == (1, 3, *x.shape[:2])
        np.testing.assert_allclose(t[0].permute(1, 2, 0).numpy() * 255, x, atol=1e-4)
    assert a[0, 0, 0] == 0  # the source is never written to


def test_ema_copies_buffers():
    from sharpkd.models.general import General, GeneralConfig
    from sharpkd.training import ema_update

    model, ema = General(GeneralConfig(channels=4, blocks=1, estimator_channels=4)), General(GeneralConfig(channels=4, blocks=1, estimator_channels=4))
    model.estimator.blur_knots.add_(0.25)
    ema_update(ema, model, 0.999)
    torch.testing.assert_close(ema.estimator.blur_knots, model.estimator.blur_knots)


def test_crop_workers_leave_interrupts_to_the_main_process(dataset):
    """Ctrl-C or a scheduler's SIGTERM reaches every process of the group: a crop worker that died of it
    made the main process print a DataLoader traceback after saving. Workers ignore both signals."""
    import os
    import signal

    from sharpkd.pairs import CropStream, load_split

    stream = CropStream(load_split(dataset, "train"), 32, 4, seed=0, start=0, n=2)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1)
    batches = iter(loader)
    first = next(batches)
    worker = batches._workers[0]
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(worker.pid, sig)
    for _ in range(3):
        assert next(batches)[0].shape == first[0].shape
    assert worker.is_alive()
    del batches


def test_a_cleanup_network_trains_told_the_truth_or_the_measurement(tmp_path):
    """prepare --degradations artifacts, train-teacher --told-only, tools/add_cleanup.py, --told-measured."""
    from sharpkd.pairs import read_manifest, train_degradations

    src = crops_folder(tmp_path, skimage.data.coffee())
    r = run("prepare", "--images", src, "--name", "art", "--val-count", "1", "--degradations", "artifacts")
    assert r.exit_code == 0, r.output
    art = train_degradations(read_manifest(paths.datasets_dir() / "art"))
    assert art.artifacts_only_share == 0.9 and art.canonical_share == 0 and art.clean_share == 0.1
    told = paths.runs_dir() / "told"
    r = run("train-teacher", "--arch", "general", "--dataset", "art", *TINY, "--channels", "8", "--blocks", "1",
            "--negative-slope", "0.1", "--told-only", "--no-calibrate", "--run", told)
    assert r.exit_code == 0, r.output
    spec = json.loads((told / "config.json").read_text())["spec"]
    assert spec["extra"]["told_only"] and spec["extra"]["keep_estimator"] and spec["loss"]["estimator_quantile"] == 0
    with_cleanup = tmp_path / "with-cleanup.pt"
    tool = Path(__file__).parent.parent / "tools" / "add_cleanup.py"
    done = subprocess.run([sys.executable, tool, told, told, "--dataset", "art", "--every", "1", "--max-raw-blur", "0.02",
                           "--out", with_cleanup], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    model = pretrained.load_file(with_cleanup).model
    assert model.cleanup is not None and float(model.cleanup.max_raw_blur) == pytest.approx(0.02)
    trained = pretrained.load_file(told).model.net
    assert same_weights(model.cleanup.net, trained)
    # a wider cleanup network replaces the one a model already has, keeping the knots it recorded
    wider = paths.runs_dir() / "wider"
    r = run("train-teacher", "--arch", "general", "--dataset", "art", *TINY, "--channels", "12", "--blocks", "1",
            "--negative-slope", "0.1", "--told-only", "--no-calibrate", "--run", wider)
    assert r.exit_code == 0, r.output
    replaced = tmp_path / "replaced.pt"
    done = subprocess.run([sys.executable, tool, with_cleanup, wider, "--dataset", "art", "--knots-from", with_cleanup,
                           "--max-raw-blur", "0.02", "--out", replaced], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    widened = pretrained.load_file(replaced).model
    assert widened.config.cleanup_channels == 12 and torch.equal(widened.cleanup.knots, model.cleanup.knots)
    assert same_weights(widened.cleanup.net, pretrained.load_file(wider).model.net)
    assert same_weights(widened.net, model.net)
    # a model's cleanup network taken out to train further (tools/cleanup_run.py), then put back with the
    # model's own knots (--keep-knots): the same weights, the same knots
    taken = tmp_path / "taken.pt"
    done = subprocess.run([sys.executable, tool.with_name("cleanup_run.py"), replaced, "--out", taken],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    alone = pretrained.load_file(taken).model
    assert alone.cleanup is None and same_weights(alone.net, widened.cleanup.net) and same_weights(alone.estimator, widened.estimator)
    back = tmp_path / "back.pt"
    done = subprocess.run([sys.executable, tool, replaced, taken, "--dataset", "art", "--keep-knots", "--out", back],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert same_weights(pretrained.load_file(back).model, widened)
    done = subprocess.run([sys.executable, tool.with_name("cleanup_run.py"), told, "--out", taken],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode != 0 and "not a general model with a cleanup stage" in done.stderr
    measured = paths.runs_dir() / "measured"
    r = run("train-teacher", "--arch", "general", "--dataset", "art", *TINY, "--channels", "8", "--blocks", "1",
            "--negative-slope", "0.1", "--told-measured", with_cleanup, "--no-calibrate", "--init", told, "--run", measured)
    assert r.exit_code == 0, r.output
    extra = json.loads((measured / "config.json").read_text())["spec"]["extra"]
    assert extra["told_only"] and torch.tensor(extra["told_measured"]["knots"]).shape == model.cleanup.knots.shape
    r = run("train-teacher", "--arch", "general", "--dataset", "art", *TINY, "--told-measured", paths.runs_dir() / "told" / "model.pt")
    assert r.exit_code == 1 and "no cleanup stage" in r.output


def test_measured_conditions_tell_each_crop_what_the_cleanup_stage_measures():
    from sharpkd.models.cleanup import Cleanup, CleanupConfig
    from sharpkd.train_teacher import _measured_conditions

    cleanup = Cleanup(CleanupConfig(channels=4, blocks=1))
    crop = torch.from_numpy(np.array(skimage.data.coffee()[:64, :64])).permute(2, 0, 1).float() / 255
    noisy = (crop + torch.randn_like(crop) * 8 / 255).clamp(0, 1)
    cond = _measured_conditions(cleanup)(torch.stack([crop, noisy]))
    assert cond.shape == (2, 4) and (cond[:, :2] == 0).all()
    assert cond[1, 2] > cond[0, 2] + 0.4  # the identity knots: sigma 8 -> about 0.8
