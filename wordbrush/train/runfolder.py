"""The run folder's own bookkeeping: one training per folder (a lock) and what a killed run's writes left behind."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from ..errors import WordbrushError
from .checkpoints import Checkpoints

LOCK = ".lock"


class RunLock:
    """One training per run folder: an flock on out/.lock, held while the run lives. The kernel drops it when the
    process dies, however it dies, so a killed run's lock is simply taken over."""

    def __init__(self, out: Path):
        self.path = out / LOCK
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(self.fd)
            raise WordbrushError(f"{out} is in use by another training (pid {holder}); wait for it or choose "
                                 f"another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


def remove_leftovers(out: Path) -> None:
    """What a killed run's writes left (temporary files and folders, never renamed into place): the lock is ours, so
    no one else is writing them."""
    for folder in (out, out / "samples"):
        if folder.is_dir():
            for p in folder.iterdir():
                if p.name.startswith(".") and (p.name.endswith(".tmp") or ".final.tmp-" in p.name):
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    if (out / "checkpoints").is_dir():
        Checkpoints(out / "checkpoints", keep=1).prune_leftovers()
