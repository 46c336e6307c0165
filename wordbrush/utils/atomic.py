"""Files that a kill can never leave half-written: write to a temporary name in the same folder, fsync, rename
into place (POSIX rename is atomic), fsync the folder so that the rename itself survives a power cut."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def fsync_dir(folder: str | Path) -> None:
    fd = os.open(str(folder), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """fsync every file under `folder`, then every folder (deepest first)."""
    folder = Path(folder)
    dirs = [folder]
    for root, subdirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        dirs += [Path(root) / d for d in subdirs]
    for d in reversed(dirs):
        fsync_dir(d)


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def finite_json(data: Any) -> Any:
    """`data` with every NaN / inf float replaced by None (JSON has no such numbers)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


def write_json(path: str | Path, data: Any) -> Path:
    """Valid JSON always: non-finite numbers become null."""
    return write_bytes(path, (json.dumps(finite_json(data), indent=2, allow_nan=False) + "\n").encode("utf-8"))


def replace_into(src_folder: str | Path, dest_folder: str | Path) -> None:
    """Move every entry of `src_folder` (fsynced first) into `dest_folder`, each by one rename; a sub-folder that
    already exists there is swapped out by rename and then removed. `src_folder` is removed at the end."""
    src, dest = Path(src_folder), Path(dest_folder)
    fsync_tree(src)
    for entry in sorted(src.iterdir()):
        target = dest / entry.name
        if entry.is_dir() and target.is_dir():
            old = dest / f".{entry.name}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(entry, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(entry, target)
    fsync_dir(dest)
    shutil.rmtree(src, ignore_errors=True)
