"""Atomic file outputs: a reader (a later stage, a rerun) sees the old file or the new one, never half of one.

The content goes to a hidden temporary name in the target's own folder (same
file system, so the final :func:`os.replace` is atomic on POSIX), is flushed to
disk, and only then takes the target's name. A failure or a kill before the
rename leaves the target untouched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The temporary name keeps ``path``'s suffix, so writers that pick a format
    from the suffix (``savefig``, ``torch.save``) behave as for ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, payload: Any, indent: int = 2) -> Path:
    """Write ``payload`` as JSON (with a final newline) to ``path`` atomically."""
    return write_text(path, json.dumps(payload, indent=indent) + "\n")
