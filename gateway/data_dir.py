"""The gateway's data directory (GATEWAY_DATA_DIR): private to the user that runs the gateway.

It holds signing keys (the gateway's, and channels' own) and the embedded database, so the directory
is 0700 and every file in it 0600 from the moment it exists: never world-readable, not even for the
instant between a create and a chmod.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

DIR_MODE = 0o700
FILE_MODE = 0o600
# The gateway's generated signing key (file links), when GATEWAY_SECRET is not set.
SECRET_FILE = "gateway-secret"


def private_dir(path: Path) -> Path:
    """Create `path` (0700), or make an existing one 0700: one made by an older version may be 0755."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # A directory owned by someone else cannot be chmod-ed; reading it still works, so carry on.
    with contextlib.suppress(PermissionError):
        path.chmod(DIR_MODE)
    return path


def open_private_append(path: Path) -> int:
    """A file descriptor appending to `path`, created 0600 (an existing file is made 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, FILE_MODE)
    return fd


def configured_or_generated(configured: SecretStr | None, path: Path) -> bytes:
    """A signing key: the configured one, or one generated once and kept at `path` (0600 from the
    start, and atomic: two processes starting on one data dir agree on one key)."""
    if configured is not None:
        return configured.get_secret_value().encode()
    return create_once(path, secrets.token_urlsafe(48)).strip().encode()


def create_once(path: Path, text: str) -> str:
    """Write `text` to `path` unless it exists, atomically, 0600; return what `path` holds.

    The text is written whole under a temporary name, then hard-linked to `path`: the link fails if
    `path` exists, so of two processes starting together exactly one wins and the other reads the
    winner's text, and no reader ever sees a half-written file.
    """
    private_dir(path.parent)
    if not path.exists():
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8")
