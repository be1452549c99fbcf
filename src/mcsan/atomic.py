"""Files written so that a crash or a kill leaves the old version or the new one, never a part.

Each function writes a hidden temporary file beside the target (``.<name>.tmp-XXXX``),
flushes it to disk, renames it over the target and flushes the directory entry. Checkpoints,
prepared data, extraction output, indexes and configs all write through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def replace_lines(path: str | Path, lines: Iterable[str]) -> None:
    """Write ``lines`` (each ending in a newline already) as the new content of ``path``."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(lines)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def replace_text(path: str | Path, text: str) -> None:
    replace_lines(path, [text])


def replace_json(path: str | Path, data: Any, indent: int | None = 2) -> None:
    replace_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def fsync_file(path: str | Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_directory(path: str | Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync elsewhere
        return
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
