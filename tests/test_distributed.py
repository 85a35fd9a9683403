"""Training under torchrun: 2 CPU processes with gloo on tiny images, against one process.

Tolerance for "the same run": the logged mean losses agree within 1e-4 relative. Both runs draw the
same crops (crop i of step s comes from its own seed) and start from the same weights, so they differ
only in the order floating-point sums are taken (seen: 1e-6)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sharpkd import paths

ARGS = ["--dataset", "tiny", "--arch", "student", "--channels", "8", "--blocks", "1", "--batch-size", "4", "--patch", "32",
        "--val-every", "100", "--log-every", "2", "--device", "cpu"]


def sharpkd(*args, ranks=1):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] if ranks > 1 else [sys.executable]
    r = subprocess.run([*launcher, "-m", "sharpkd", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.fixture
def tiny(two_photos):
    sharpkd("prepare", "--images", two_photos, "--name", "tiny", "--val-count", "1")


def test_two_processes_train_like_one_and_resume_with_any_count(tiny):
    two, one = paths.runs_dir() / "two", paths.runs_dir() / "one"
    sharpkd("train-teacher", *ARGS, "--steps", "8", "--run-dir", two, ranks=2)
    sharpkd("train-teacher", *ARGS, "--steps", "8", "--run", one)
    # (a) both ranks hold identical weights (checked by the run itself, over the ranks' checksums)
    assert rows(two)[-1] == {"step": 8, "processes": 2, "weights_in_sync": True}
    # (b) the loss curve of 2 ranks x 2 crops matches 1 process x 4 crops
    loss2 = [r["loss"] for r in rows(two) if "loss" in r]
    loss1 = [r["loss"] for r in rows(one) if "loss" in r]
    assert len(loss2) == len(loss1) == 4
    np.testing.assert_allclose(loss2, loss1, rtol=1e-4)
    w2, w1 = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (two, one))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=1e-4)
    # (c) a resumed 2-rank run continues from the saved step
    out = sharpkd("train-teacher", *ARGS, "--steps", "12", "--run-dir", two, ranks=2)
    assert "resuming run two at step 8" in out
    assert torch.load(two / "last.pt", weights_only=True)["step"] == 12 and rows(two)[-1]["step"] == 12
    # (d) a 2-rank checkpoint resumes in one process
    out = sharpkd("train-teacher", *ARGS, "--steps", "14", "--run", two)
    assert "resuming run two at step 12" in out and torch.load(two / "last.pt", weights_only=True)["step"] == 14


def test_batch_must_split_over_the_processes(tiny):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    r = subprocess.run([*launcher, "-m", "sharpkd", "train-teacher", *ARGS[:8], "--patch", "32", "--batch-size", "3", "--steps", "2", "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "--batch-size 3 does not split evenly over 2 processes" in r.stdout + r.stderr
