"""Consoles, progress bars and the one way a command fails: ``fail()`` prints a clear message, no traceback."""

from __future__ import annotations

from typing import NoReturn

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

# soft_wrap: messages are not cut at the terminal width, so file paths in them stay whole and copy-pastable
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise SystemExit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}")


def _rate(task) -> float | None:
    """Average rate since the task started: what is done over the time it took (the summary's
    definition too), not rich's rate over the last few updates."""
    elapsed = task.elapsed
    return task.completed / elapsed if elapsed and task.completed > 0 else None


class RateColumn(ProgressColumn):
    """Average speed of a task whose units are ``unit`` (e.g. MP/s, it/s)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        rate = _rate(task)
        return Text(f"{rate:.2f} {self.unit}" if rate else f"- {self.unit}", style="cyan")


class EtaColumn(ProgressColumn):
    """Time left at the average rate."""

    def render(self, task) -> Text:
        rate = _rate(task)
        if not rate or task.total is None:
            return Text("ETA -:--:--", style="cyan")
        left = int(max(task.total - task.completed, 0) / rate)
        return Text(f"ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}", style="cyan")


def progress(unit: str, quiet: bool = False) -> Progress:
    """A progress bar on stderr with done/total, rate in ``unit``/s and ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.1f}/{task.total:.1f}" if unit == "MP" else "{task.completed:.0f}/{task.total:.0f}"),
        RateColumn(f"{unit}/s"),
        TimeElapsedColumn(),
        EtaColumn(),
        console=err,
        disable=quiet,
        transient=False,
    )
