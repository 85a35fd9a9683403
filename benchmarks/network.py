"""The network alone, in-process: seconds per 12 MP of output for each way of feeding it tiles.

    python benchmarks/network.py [--models general fast x4] [--rounds 5] [--onnx]

Cases, at 128 px tiles with each model's tile margin: a batch of 8 separate tile regions (how `enhance`
fed the network before blocks), blocks of 4 x 2, 3 x 3 and 4 x 4 adjacent tiles as one region
(``inference.block_for``), and a whole 1024 x 768 photo. The cases are interleaved round by round and the
median is printed, so a machine that slows down over the minutes does not favour one.

``--onnx`` adds the same network exported to ONNX and run by ONNX Runtime (needs the ``onnx`` and
``onnxruntime`` packages; not a dependency of sharpkd) for every case, with spinning and with passive
thread pools, and each runtime's import time in a fresh process. Whole ``enhance`` runs
are ``benchmarks/speed.py`` and ``benchmarks/ab_trees.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `sharpkd enhance` runs

import numpy as np
import torch

from sharpkd import pretrained

TILE = 128
TWELVE_MP = 12e6
CONDITIONS = [[0.5, 0.6, 0.0, 0.0]]  # a soft, downscaled photo: the general models compute it fully


def cases(margin: int) -> dict[str, tuple[int, int, int, int]]:
    """name -> (batch, height, width, output pixels of one pass)."""
    side = TILE + 2 * margin
    out = {"8 separate tiles (batch)": (8, side, side, 8 * TILE * TILE)}
    for across, down in ((4, 2), (3, 3), (4, 4)):
        out[f"block {across} x {down}"] = (1, down * TILE + 2 * margin, across * TILE + 2 * margin, across * down * TILE * TILE)
    out["whole 1024 x 768"] = (1, 768, 1024, 768 * 1024)
    return out


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def onnx_sessions(net: torch.nn.Module, x: torch.Tensor, cond: torch.Tensor, work: Path) -> dict:
    import onnxruntime as ort

    class Plain(torch.nn.Module):  # the autograd path: no in-place ops for the exporter to trace
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return self.inner.forward_features(x, c)[0]

    path = work / "net.onnx"
    dynamic = {"x": {0: "b", 2: "h", 3: "w"}, "cond": {0: "b"}, "y": {0: "b", 2: "h", 3: "w"}}
    torch.onnx.export(Plain(net), (x, cond), str(path), dynamo=False, input_names=["x", "cond"], output_names=["y"],
                      dynamic_axes=dynamic, opset_version=17)
    sessions = {}
    for spin in (True, False):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        sessions["spinning" if spin else "passive"] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sessions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=["general", "fast", "x4"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=4, help="passes per case and round")
    ap.add_argument("--onnx", action="store_true")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; seconds per 12 MP of output, median of {a.rounds}\n")
    if a.onnx:
        print(f"import in a fresh process: torch {import_seconds('torch'):.2f} s, onnxruntime {import_seconds('onnxruntime'):.2f} s\n")
    print("| model | how | runtime | s per 12 MP | vs 8 separate tiles |")
    print("|---|---|---|---:|---:|")
    for name in a.models:
        loaded = pretrained.load(name)
        net = loaded.model.net if loaded.conditioned else loaded.model
        runs = {}
        for label, (batch, h, w, pixels) in cases(loaded.context).items():
            x = torch.rand(batch, 3, h, w).contiguous(memory_format=torch.channels_last)
            cond = torch.tensor(CONDITIONS).expand(batch, -1).contiguous() if loaded.conditioned else None
            runs[(label, "torch")] = (lambda x=x, cond=cond, net=net: net(x, cond) if cond is not None else net(x), pixels)
        if a.onnx and loaded.conditioned:
            with tempfile.TemporaryDirectory() as work:  # one export: batch, height and width are dynamic axes
                sessions = onnx_sessions(net, torch.rand(1, 3, 64, 64), torch.tensor(CONDITIONS), Path(work))
            for label, (batch, h, w, pixels) in cases(loaded.context).items():
                x = torch.rand(batch, 3, h, w)
                cond = torch.tensor(CONDITIONS).expand(batch, -1).contiguous()
                feed = {"x": x.numpy(), "cond": cond.numpy()}
                for kind, sess in sessions.items():
                    runs[(label, f"onnxruntime, {kind}")] = (lambda s=sess, f=feed: s.run(None, f), pixels)
        seconds: dict = {key: [] for key in runs}
        with torch.inference_mode():
            for _ in range(a.rounds):
                for key, (fn, pixels) in runs.items():
                    fn()  # warm: first-pass allocations and ONNX Runtime's shape plans
                    t = time.perf_counter()
                    for _ in range(a.repeats):
                        fn()
                    seconds[key].append((time.perf_counter() - t) / a.repeats / pixels * TWELVE_MP)
        base = float(np.median(seconds[("8 separate tiles (batch)", "torch")]))
        for (label, runtime), values in seconds.items():
            s = float(np.median(values))
            print(f"| {name} | {label} | {runtime} | {s:.2f} | {base / s:.2f}x |")


if __name__ == "__main__":
    main()
