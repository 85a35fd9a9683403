"""The networks: a compact student (the canonical-degradation specialist, ``x4``), a deep, wide teacher
(distils into it) and the general student (told or estimating the degradation; ships as the default).

:func:`build` is the one place that maps an architecture name stored in a checkpoint to its class.
"""

from __future__ import annotations

from torch import nn

from sharpkd.models.general import General, GeneralConfig
from sharpkd.models.student import Student, StudentConfig
from sharpkd.models.teacher import Teacher, TeacherConfig

ARCHITECTURES = ("student", "teacher", "general")


def build(arch: str, config: dict | None = None) -> nn.Module:
    """A fresh model of architecture ``arch`` (one of :data:`ARCHITECTURES`) with ``config`` overrides."""
    config = config or {}
    if arch == "student":
        return Student(StudentConfig(**config))
    if arch == "teacher":
        return Teacher(TeacherConfig(**config))
    if arch == "general":
        return General(GeneralConfig(**config))
    raise ValueError(f"unknown architecture {arch!r} (expected one of {', '.join(ARCHITECTURES)})")


def arch_of(model: nn.Module) -> str:
    if isinstance(model, Student):
        return "student"
    if isinstance(model, Teacher):
        return "teacher"
    if isinstance(model, General):
        return "general"
    raise TypeError(f"not a sharpkd model: {type(model).__name__}")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
