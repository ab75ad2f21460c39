"""The one check every reader makes first: the path names an existing, readable regular file."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from convert.errors import CaffeFormatError


def regular_file(path: str | os.PathLike, expected: str = "a model file") -> Path:
    """``path`` as a Path, or a one-line CaffeFormatError saying why it cannot be read as ``expected``
    (missing, a folder, a device/pipe/socket, unreadable)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise CaffeFormatError("no such file", path=str(p)) from None
    except OSError as e:
        raise CaffeFormatError(f"cannot read: {e.strerror}", path=str(p)) from None
    if stat.S_ISDIR(mode):
        raise CaffeFormatError(f"is a directory, not a regular file; give {expected}", path=str(p))
    if not stat.S_ISREG(mode):
        raise CaffeFormatError(f"is not a regular file (a device, pipe or socket); give {expected}", path=str(p))
    if not os.access(p, os.R_OK):
        raise CaffeFormatError("cannot read: permission denied", path=str(p))
    return p
