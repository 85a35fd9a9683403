"""``enhance --jobs N``: one batch restored by N worker processes, each with 1/N of the CPU threads.

Why processes: the network's convolutions keep every thread busy, but decoding, the estimate, encoding
and the seams between tiles run on one thread; two single-thread processes on 2 cores fill each other's
gaps (a folder of ten 12 MP JPEGs: about 1.2x, docs/performance.md). Each worker loads the model and runs
:func:`sharpkd.batch.run_batch` on its part of the photos (largest first onto the least loaded worker,
by header megapixels; each part keeps the input order). Its events come back through a queue, so the
caller sees the same events and one summary, as from a single process.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sharpkd.batch import Job, Options, Plan, Summary, to_do


class WorkerError(Exception):
    """A worker could not start (e.g. the model would not load); every worker would fail the same way."""


@dataclass(frozen=True)
class ModelChoice:
    """What each worker loads (see :func:`sharpkd.pretrained.load`)."""

    model: str | None = None
    weights: Path | None = None
    device: str = "cpu"


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, where the system says it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def split(jobs: list[Job], sizes: dict[Path, float], n: int) -> list[list[Job]]:
    """``jobs`` in at most ``n`` parts of about equal megapixels (``sizes``; unknown: 0): the largest
    photo first onto the least loaded part (ties: the one with fewer photos). Each part keeps the input
    order; no part is empty."""
    loads = [0.0] * n
    parts: list[list[int]] = [[] for _ in range(n)]
    for i in sorted(range(len(jobs)), key=lambda i: -sizes.get(jobs[i].source, 0.0)):
        k = min(range(n), key=lambda k: (loads[k], len(parts[k])))
        parts[k].append(i)
        loads[k] += sizes.get(jobs[i].source, 0.0)
    return [[jobs[i] for i in sorted(p)] for p in parts if p]


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds through write_atomic, which removes its temporary file


def _work(index: int, choice: ModelChoice, jobs: list[Job], options: Options, threads: int, events) -> None:
    """A worker process: load the model, restore ``jobs``, send every event and then the summary."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    try:
        import torch

        from sharpkd import batch, pretrained

        torch.set_num_threads(threads)
        try:
            loaded = pretrained.load(choice.model, choice.weights, pretrained.resolve_device(choice.device))
        except pretrained.WeightsError as e:
            events.put(("error", index, str(e)))
            return
        events.put(("ready", index, {"name": loaded.name, "arch": loaded.arch, "source": loaded.source}))

        def send(kind: str, job: Job, info: dict) -> None:
            events.put(("event", index, kind, job.source, info))

        # while photos are written, SIGTERM (the parent stopping this worker) unwinds through the atomic
        # write; before and after, there is nothing to clean up and the default (end quietly) is right
        signal.signal(signal.SIGTERM, _stop)
        try:
            summary = batch.run_batch(loaded, Plan(jobs=jobs), options, send, batch.sharp_checker(loaded))
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        events.put(("summary", index, summary))
    except KeyboardInterrupt:
        pass
    except Exception as e:  # noqa: BLE001 - a bug or a broken installation: its photos fail with the reason
        events.put(("crash", index, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))


def run(
    choice: ModelChoice,
    plan: Plan,
    options: Options,
    jobs: int,
    sizes: dict[Path, float],
    on_event: Callable[[str, Job, dict], None] | None = None,
    on_ready: Callable[[dict], None] | None = None,
) -> Summary:
    """Like :func:`sharpkd.batch.run_batch`, with the photos to compute split across ``jobs`` worker
    processes. ``on_ready(model)`` is called once, when the first worker has loaded the model (its name,
    arch, source). Raises WorkerError if the workers cannot start; KeyboardInterrupt stops them (their
    unfinished outputs are never left behind: every write is atomic)."""
    emit = on_event or (lambda *_: None)
    summary = Summary()
    summary.failed.extend((str(p), r) for p, r in plan.refused)
    todo = to_do(plan, options.overwrite)
    computed = set(todo)
    for job in plan.jobs:
        if job not in computed:
            summary.skipped += 1
            emit("skip", job, {})
    parts = split(todo, sizes, jobs)
    if not parts:
        return summary
    threads = max(1, cpu_count() // len(parts))
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch state forked mid-use
    events = context.Queue()
    workers = [context.Process(target=_work, args=(i, choice, part, options, threads, events), daemon=True)
               for i, part in enumerate(parts)]
    for w in workers:
        w.start()
    by_source = {j.source: j for j in todo}
    pending = {i: dict.fromkeys(j.source for j in part) for i, part in enumerate(parts)}  # not yet done or failed, in order
    ended: set[int] = set()
    warned = False
    t0 = None

    def give_up(i: int, reason: str) -> None:
        """Worker ``i`` ended without a summary: each photo it had not finished fails with ``reason``."""
        ended.add(i)
        for source in pending[i]:
            summary.failed.append((str(source), reason))
            emit("fail", by_source[source], {"reason": reason})
        pending[i].clear()

    try:
        while len(ended) < len(workers):
            try:
                message = events.get(timeout=0.5)
            except queue.Empty:
                for i, w in enumerate(workers):
                    if i not in ended and not w.is_alive():  # it died without a summary
                        killed = ", killed: out of memory?" if w.exitcode == -signal.SIGKILL else ""
                        give_up(i, f"the worker process ended unexpectedly (exit code {w.exitcode}{killed}); run again to redo it")
                continue
            kind, i = message[0], message[1]
            if kind == "error":
                raise WorkerError(message[2])
            if kind == "crash":
                give_up(i, f"the worker process stopped ({message[2]}); run again to redo it")
            elif kind == "ready":
                if t0 is None:
                    t0 = time.perf_counter()
                    summary.model = message[2]["name"]
                    if on_ready:
                        on_ready(message[2])
            elif kind == "summary":
                ended.add(i)
                part = message[2]
                summary.done += part.done
                summary.unchanged += part.unchanged
                summary.failed.extend(part.failed)
                summary.megapixels += part.megapixels
            else:
                event, source, info = message[2], message[3], message[4]
                if event in ("done", "fail"):
                    pending[i].pop(source, None)
                if event == "warn":  # the same warning from every worker: once
                    if warned:
                        continue
                    warned = True
                emit(event, by_source[source], info)
        for w in workers:  # each ends by itself after its summary
            w.join(timeout=30)
    finally:
        for w in workers:  # interrupted, or a worker that would not start: stop the others
            if w.is_alive():
                w.terminate()
        for w in workers:
            w.join(timeout=10)
        events.close()
    summary.seconds = time.perf_counter() - (t0 or time.perf_counter())
    return summary
