"""The two networks: a compact student (ships by default) and a deep, wide teacher (distils into it).

:func:`build` is the one place that maps an architecture name stored in a checkpoint to its class.
"""

from __future__ import annotations

from torch import nn

from sharpkd.models.student import Student, StudentConfig
from sharpkd.models.teacher import Teacher, TeacherConfig

ARCHITECTURES = ("student", "teacher")


def build(arch: str, config: dict | None = None) -> nn.Module:
    """A fresh model of architecture ``arch`` ("student" or "teacher") with ``config`` overrides."""
    config = config or {}
    if arch == "student":
        return Student(StudentConfig(**config))
    if arch == "teacher":
        return Teacher(TeacherConfig(**config))
    raise ValueError(f"unknown architecture {arch!r} (expected one of {', '.join(ARCHITECTURES)})")


def arch_of(model: nn.Module) -> str:
    if isinstance(model, Student):
        return "student"
    if isinstance(model, Teacher):
        return "teacher"
    raise TypeError(f"not a sharpkd model: {type(model).__name__}")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
