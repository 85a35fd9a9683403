"""Train several sharpkd runs side by side on one GPU within a wall-clock budget (maintainers' tool).

How the bundled weights were trained on a lent GPU machine (see docs/model-card.md):

    python tools/train_gpu.py --budget 480 --out OUT JOB...

where each JOB is ``name=sharpkd arguments`` (quoted), e.g.
``"teacher=train-teacher --dataset sun80 --init bundled --batch-size 32 --patch 192"``.

The jobs share the GPU, so their speed depends on each other. The tool therefore first runs all of them
together for ``--probe`` steps, reads each one's seconds per step from its log, and then starts the real
runs together with ``--steps`` set so that each ends inside the budget: every run has a complete
learning-rate schedule, and the steps it used are in its config.json. Each run's folder is
``OUT/runs/<name>``; the output of each command goes to ``OUT/<name>.log``.

``--deadline S`` stops whatever still runs S seconds after the tool started (SIGTERM: each run saves its
checkpoint ``last.pt``, whose EMA weights ``--weights RUN/last.pt`` loads) and returns, so that a machine
lent for a fixed time still hands back what was trained. (The probe can underestimate: validation passes
and the runs' start-up are not in it. One run here was still 3 % short of its steps at the budget.)
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


def launch(name: str, args: list[str], steps: int, run_dir: Path, log: Path, device: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "sharpkd", *args, "--steps", str(steps), "--run", str(run_dir), "--device", device]
    log.write_text(shlex.join(cmd) + "\n")
    return subprocess.Popen(cmd, stdout=open(log, "a"), stderr=subprocess.STDOUT)


def seconds_per_step(run_dir: Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    timed = [r for r in rows if "sec" in r]
    (a, b) = timed[-2], timed[-1]  # the last interval: after cuDNN's autotuning and the loaders' start
    return (b["sec"] - a["sec"]) / (b["step"] - a["step"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jobs", nargs="+", help="name=arguments of sharpkd (without --steps/--run/--device)")
    ap.add_argument("--budget", type=float, required=True, help="seconds of training for the real runs")
    ap.add_argument("--probe", type=int, default=100, help="steps of the speed probe (logged every 25)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--deadline", type=float, help="seconds after start at which every run still going is stopped")
    a = ap.parse_args()
    started = time.time()
    a.out.mkdir(parents=True, exist_ok=True)
    jobs = {}
    for job in a.jobs:
        name, _, args = job.partition("=")
        jobs[name] = shlex.split(args)

    probes = {n: launch(n, args + ["--val-every", str(10 * a.probe)], a.probe, a.out / "probe" / n, a.out / f"probe-{n}.log", a.device) for n, args in jobs.items()}
    for n, p in probes.items():
        if p.wait() != 0:
            sys.exit(f"probe of {n} failed: see {a.out / f'probe-{n}.log'}")
    speeds = {n: seconds_per_step(a.out / "probe" / n) for n in jobs}
    # validation passes and checkpoints take a little time too: keep 8 % in hand
    steps = {n: max(100, int(a.budget * 0.92 / s) // 100 * 100) for n, s in speeds.items()}
    print(json.dumps({"seconds_per_step": speeds, "steps": steps}), flush=True)

    t0 = time.time()
    runs = {n: launch(n, args, steps[n], a.out / "runs" / n, a.out / f"{n}.log", a.device) for n, args in jobs.items()}
    while any(p.poll() is None for p in runs.values()):
        if a.deadline is not None and time.time() - started > a.deadline:
            for p in runs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)  # the run saves last.pt, then exits
            for p in runs.values():
                p.wait()
            break
        time.sleep(1)
    failed = [n for n, p in runs.items() if p.returncode != 0]
    print(json.dumps({"wall_s": round(time.time() - t0, 1), "failed_or_stopped": failed}), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
