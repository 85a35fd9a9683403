"""enhance --jobs N: a batch split across worker processes gives what one process gives."""

import json
from pathlib import Path

import numpy as np
import skimage.data
from click.testing import CliRunner
from PIL import Image, ImageFilter

from sharpkd import parallel
from sharpkd.batch import Job
from sharpkd.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def soft_folder(root: Path) -> Path:
    """Five soft photos of different sizes, one file that is not an image inside, and one output that
    exists already."""
    d = root / "in"
    d.mkdir()
    for i, (name, img) in enumerate([("astronaut", skimage.data.astronaut()), ("coffee", skimage.data.coffee()),
                                     ("chelsea", skimage.data.chelsea()), ("rocket", skimage.data.rocket()),
                                     ("cat2", skimage.data.chelsea()[::-1])]):
        small = Image.fromarray(np.ascontiguousarray(img)).resize((160 + 32 * i, 128 + 16 * i), Image.BICUBIC)
        small.filter(ImageFilter.GaussianBlur(1.5)).save(d / f"{name}.png")
    (d / "broken.png").write_bytes(b"not a png at all")
    return d


def test_split_balances_megapixels_and_keeps_the_input_order():
    jobs = [Job(Path(f"{i}.png"), Path(f"o/{i}.png")) for i in range(6)]
    sizes = {Path("0.png"): 12.0, Path("1.png"): 1.0, Path("2.png"): 6.0, Path("3.png"): 6.0, Path("4.png"): 0.0, Path("5.png"): 1.0}
    parts = parallel.split(jobs, sizes, 2)
    assert sorted(j.source.name for p in parts for j in p) == sorted(j.source.name for j in jobs)  # each once
    loads = [sum(sizes[j.source] for j in p) for p in parts]
    assert loads == [13.0, 13.0] or sorted(loads) == [12.0, 14.0]
    assert all([jobs.index(j) for j in p] == sorted(jobs.index(j) for j in p) for p in parts)
    assert len(parallel.split(jobs[:1], sizes, 4)) == 1  # no empty part
    assert parallel.split([], sizes, 3) == []


def test_two_jobs_write_what_one_process_writes(tmp_path):
    d = soft_folder(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = run("enhance", d, "-o", one, "--json")
    two.mkdir()
    (two / "coffee.png").write_bytes(b"kept")  # an existing output: skipped, not overwritten
    r2 = run("enhance", d, "-o", two, "--jobs", "2", "--json")
    assert r1.exit_code == r2.exit_code == 1  # the broken file fails in both
    s1, s2 = json.loads(r1.stdout), json.loads(r2.stdout)
    assert (s2["done"] + s2["unchanged"], s2["skipped"], s2["failed"]) == (s1["done"] + s1["unchanged"] - 1, 1, 1)
    assert s2["failures"][0]["path"].endswith("broken.png") and s2["model"] == s1["model"] == "general"
    assert (two / "coffee.png").read_bytes() == b"kept"
    for f in sorted(one.glob("*.png")):
        if f.name == "coffee.png":
            continue
        a = np.asarray(Image.open(f)).astype(int)
        b = np.asarray(Image.open(two / f.name)).astype(int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, f.name  # threads differ: within 1 level
    assert not list(two.glob(".sharpkd-*"))  # no temporary file left


def test_jobs_report_progress_per_photo_and_the_model_once(tmp_path):
    d = soft_folder(tmp_path)
    r = run("enhance", d, "-o", tmp_path / "out", "--jobs", "3", "-v")
    assert r.exit_code == 1
    assert r.output.count("model: general (general, bundled") == 1
    assert sum(line.startswith(("done ", "left unchanged ")) for line in r.output.splitlines()) == 5
    assert "failed" in r.output and "broken.png" in r.output
    assert "5 done" in r.output or "left unchanged" in r.output


def test_jobs_with_weights_that_do_not_load_fail_clearly(tmp_path):
    d = soft_folder(tmp_path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a weights file")
    r = run("enhance", d, "-o", tmp_path / "out", "--jobs", "2", "--weights", bad)
    assert r.exit_code == 1 and "bad.pt" in r.output
    assert not list((tmp_path / "out").glob("*.png"))


def test_a_worker_that_breaks_fails_its_photos_with_the_reason(tmp_path):
    """An error no photo is to blame for (here: a device torch does not know) fails the worker's photos
    with what went wrong, instead of a traceback or a hang."""
    from sharpkd import batch

    d = soft_folder(tmp_path)
    plan = batch.plan_batch([d], tmp_path / "out", batch.Options())
    events = []
    summary = parallel.run(parallel.ModelChoice(device="no-such-device"), plan, batch.Options(), 2, {},
                           lambda kind, job, info: events.append((kind, job.source.name, info)))
    assert summary.done == 0 and len(summary.failed) == 6  # 5 photos + the broken file, each once
    reasons = {r for p, r in summary.failed if not p.endswith("broken.png")}
    assert len(reasons) == 1 and "the worker process stopped" in reasons.pop()
    assert sorted(name for kind, name, _ in events if kind == "fail") == sorted(p.name for p in d.iterdir())
