"""Writing files without ever leaving half of one, and loading weights without running pickled code.

Every file sharpkd writes (outputs, checkpoints, pairs, manifests, the installed student) goes through
:func:`write_atomic`: the data goes to a temporary file in the same folder, then one rename puts it in
place, so a stopped run leaves either the old file or the new one. The result gets the permissions an
ordinary file write gets (0666 minus the umask), not the 0600 of a temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes | Callable[[Path], None]) -> None:
    """Write ``data`` (bytes, or a function that writes the file at the path it is given) to ``path``
    atomically. Raises OSError (and whatever ``data`` raises); the temporary file is removed then."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".sharpkd-", suffix=path.suffix, dir=path.parent)
    tmp = Path(name)
    try:
        if isinstance(data, bytes):
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        else:
            os.close(fd)
            data(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (created if missing), or None if they can: tried
    once, with a real temporary file, so permissions, read-only disks and ACLs all count."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".sharpkd-probe-", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        return e.strerror or str(e)
    return None


def torch_load(path: Path) -> object:
    """``torch.load`` of a checkpoint or weights file with ``weights_only=True`` (tensors and plain
    containers only: no pickled code runs). Raises FileNotFoundError, or ValueError naming the file."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # damaged or foreign files raise many types; all mean "not usable"
        raise ValueError(f"{path}: not a readable sharpkd file ({type(e).__name__}: {e})") from None
