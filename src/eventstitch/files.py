"""Files that hold secrets: created owner-only whatever the umask.

The data folder holds the database (signing secrets in the clear), its WAL, the API token;
an export holds the secrets too. A umask of 0 or 022 must not make any of them readable by
other users, so modes are set explicitly, not left to the umask.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) owner-only; an existing folder is left as it is,
    since it may be shared on purpose."""
    if path.is_dir():
        return
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)  # mkdir's mode passes through the umask


def private_file(path: Path) -> None:
    """Make `path` owner-only, creating it empty if it is missing."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    try:
        # Also tightens a file an older version left readable; another owner's file (shared
        # on purpose, writable by this user) cannot be changed, and is not refused for it.
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def open_private(path: Path) -> BinaryIO:
    """`path` opened for writing from the start, owner-only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return os.fdopen(fd, "wb")
