"""Where sharpkd keeps prepared data sets, training runs and installed weights.

Everything lives under one data directory: the platform's user data dir (platformdirs), or
``$SHARPKD_HOME`` when set. Nothing is ever written into site-packages.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home() -> Path:
    env = os.environ.get("SHARPKD_HOME")
    return Path(env).expanduser() if env else platformdirs.user_data_path("sharpkd", appauthor=False)


def datasets_dir(root: Path | None = None) -> Path:
    return (root or home()) / "datasets"


def runs_dir(root: Path | None = None) -> Path:
    return (root or home()) / "runs"


def installed_student(root: Path | None = None) -> Path:
    """The checkpoint ``sharpkd distill --install`` makes the user's default."""
    return (root or home()) / "models" / "student.pt"
