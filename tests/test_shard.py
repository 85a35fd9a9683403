"""enhance --shard: N independent workers share a batch, disjointly and completely."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sharpkd import batch
from sharpkd.cli import main


def run(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert "Traceback" not in result.output, result.output
    return result


@pytest.fixture
def archive(tmp_path, photo):
    """14 photos in a nested tree (some names repeat in different folders)."""
    d = tmp_path / "archive"
    names = []
    for i in range(14):
        sub = d / ("2023" if i % 3 == 0 else "2024/summer" if i % 3 == 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(photo, 7 * i, axis=1)).save(sub / f"img{i % 5}_{i}.png")
        names.append((sub / f"img{i % 5}_{i}.png").relative_to(d).as_posix())
    return d, sorted(names)


def test_three_shards_cover_a_nested_folder_disjointly_and_completely(archive, tmp_path):
    d, names = archive
    out = tmp_path / "out"
    done = []
    for i in range(3):
        r = run("enhance", d, "-o", out, "-r", "--shard", f"{i}/3", "--strength", "0", "--json")
        assert r.exit_code == 0, r.output
        summary = json.loads(r.stdout)
        assert summary["shard"] == f"{i}/3"
        done.append(summary["done"] + summary["unchanged"])
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == names  # complete, and (with the counts) disjoint
    assert sum(done) == len(names) and all(n > 0 for n in done)


def test_the_partition_is_stable_when_files_are_added(archive, tmp_path):
    d, _ = archive
    before = {j.key: batch.shard_of(j.key, 3) for j in batch.plan_batch([d], tmp_path / "o", batch.Options(recursive=True)).jobs}
    Image.new("RGB", (8, 8)).save(d / "2023" / "aaa_new.png")
    after = {j.key: batch.shard_of(j.key, 3) for j in batch.plan_batch([d], tmp_path / "o", batch.Options(recursive=True)).jobs}
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1


def test_shard_auto_reads_slurm_and_kubernetes(archive, tmp_path):
    d, _ = archive
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_MAX": "6"}
    assert batch.parse_shard("auto", None, env) == batch.Shard(1, 3)
    assert batch.parse_shard("auto", None, {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}) == batch.Shard(2, 4)
    assert batch.parse_shard("auto", 4, {"JOB_COMPLETION_INDEX": "3"}) == batch.Shard(3, 4)
    with pytest.raises(batch.PlanError, match="--shards N"):
        batch.parse_shard("auto", None, {"JOB_COMPLETION_INDEX": "3"})
    with pytest.raises(batch.PlanError, match="0 <= I < N"):
        batch.parse_shard("3/3", None, {})
    r = run("enhance", d, "-o", tmp_path / "o", "--shard", "auto", env={"SLURM_ARRAY_TASK_ID": None, "JOB_COMPLETION_INDEX": None})
    assert r.exit_code == 1 and "neither SLURM_ARRAY_TASK_ID" in r.output
    r = run("enhance", d, "-o", tmp_path / "o", "-r", "--shard", "auto", "--shards", "2", "--strength", "0", env={"JOB_COMPLETION_INDEX": "1"})
    assert r.exit_code == 0 and "shard 1/2 (" in r.output
