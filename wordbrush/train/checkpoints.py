"""A run's checkpoints: a folder per step that is either complete or absent, the way torch.distributed.checkpoint
commits one.

    out/checkpoints/step_000100/   the stage's model folder (what from_pretrained loads) + state/ (every trained
                                   module, EMA included, and every optimizer) + rng.json (every random generator,
                                   per rank) + complete.json (step, elapsed, the size and sha256 of every file)

A checkpoint is written in a temporary folder beside it; every file is fsynced; complete.json is written last;
the folder is renamed into place (one atomic rename) and the last `keep` are kept. "latest" is the newest folder
whose complete.json checks out against its files; a truncated or mismatched one is refused with one line naming
it, and the one before it is used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_optimizer, load_part, save_optimizer, save_part
from ..errors import CheckpointError
from ..utils.atomic import fsync_dir, fsync_tree, write_json

COMPLETE = "complete.json"
STATE = "state"  # sub-folder: <module>.safetensors, optim_<name>.safetensors (+ .json)
RNG = "rng.json"
_STEP = re.compile(r"^step_(\d{6,})$")

Rng = torch.Generator | np.random.Generator


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Checkpoints:
    def __init__(self, root: Path, keep: int):
        self.root, self.keep = Path(root), keep

    def folders(self) -> list[tuple[int, Path]]:
        """Every step_N folder (complete or not), oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.root.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()]
        return sorted(found)

    def problem(self, folder: Path) -> str | None:
        """Why `folder` is not a complete checkpoint, or None."""
        marker = folder / COMPLETE
        if not marker.is_file():
            return f"no {COMPLETE}"
        try:
            meta = json.loads(marker.read_text(encoding="utf-8"))
            files = meta["files"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            return f"{COMPLETE} unreadable ({e})"
        for rel, (size, digest) in files.items():
            path = folder / rel
            if not path.is_file():
                return f"{rel} missing"
            if path.stat().st_size != size:
                return f"{rel} is {path.stat().st_size} bytes, {COMPLETE} says {size}"
            if _sha256(path) != digest:
                return f"{rel} does not match its checksum"
        return None

    def complete(self, say: Callable[[str], None] = print) -> list[Path]:
        """The complete checkpoints, newest first; each refused one is named in one line."""
        good = []
        for _, folder in reversed(self.folders()):
            why = self.problem(folder)
            if why is None:
                good.append(folder)
            else:
                say(f"checkpoint {folder} refused: {why}")
        return good

    def save(self, step: int, write: Callable[[Path], None], meta: dict[str, Any]) -> Path:
        """`write(folder)` fills a temporary folder; then it is sealed and renamed to step_<step>."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"step_{step:06d}"
        tmp = self.root / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        fsync_tree(tmp)
        files = {str(p.relative_to(tmp)): [p.stat().st_size, _sha256(p)] for p in sorted(tmp.rglob("*")) if p.is_file()}
        write_json(tmp / COMPLETE, {**meta, "step": step, "files": files})  # the commit marker, last
        if final.exists():  # the same step again (a run resumed from an older checkpoint): swap it out
            self._drop(final)
        os.replace(tmp, final)
        fsync_dir(self.root)
        self.prune()
        return final

    def prune_leftovers(self) -> None:
        """The temporary folders of writes a kill interrupted (never renamed into place)."""
        for p in self.root.iterdir():
            if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name):
                shutil.rmtree(p, ignore_errors=True)

    def prune(self) -> None:
        """Keep the newest `keep` complete checkpoints; drop older ones and leftovers of killed writes."""
        self.prune_leftovers()
        kept = 0
        for _, folder in reversed(self.folders()):
            if (folder / COMPLETE).is_file() and kept < self.keep:
                kept += 1
                continue
            self._drop(folder)

    def _drop(self, folder: Path) -> None:
        """Delete a checkpoint so that a kill midway leaves it whole or gone, never half there: renamed out of the
        step_* names first (one atomic rename), then removed; a kill before the removal leaves a leftover that
        prune_leftovers clears."""
        old = self.root / f".{folder.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)  # a leftover of the same name (a killed run with this pid)
        os.replace(folder, old)
        fsync_dir(self.root)
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------- what one holds


def save_state(folder: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer],
               extra: dict[str, Any]) -> None:
    (folder / STATE).mkdir(parents=True, exist_ok=True)
    for name, m in modules.items():
        save_part(m, folder / STATE / f"{name}.safetensors")
    for name, opt in optimizers.items():
        save_optimizer(opt, folder / STATE / f"optim_{name}.safetensors", extra)


def load_state(folder: Path, modules: dict[str, torch.nn.Module],
               optimizers: dict[str, torch.optim.Optimizer]) -> None:
    for name, m in modules.items():
        load_part(m, folder / STATE / f"{name}.safetensors", f"{folder.name} {name}")
    for name, opt in optimizers.items():
        load_optimizer(opt, folder / STATE / f"optim_{name}.safetensors")


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8).clone()


def rng_state(rngs: dict[str, Rng]) -> dict[str, Any]:
    """This process's random generators: torch (CPU and CUDA), numpy's global one, python's, and the stage's."""
    state: dict[str, Any] = {"torch": _b64(torch.get_rng_state()), "numpy": _np_global(),
                             "python": random.getstate(), "stage": {}}
    if torch.cuda.is_available():
        state["cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    for name, g in rngs.items():
        state["stage"][name] = ({"torch": _b64(g.get_state())} if isinstance(g, torch.Generator)
                                else {"numpy": g.bit_generator.state})
    return state


def _np_global() -> list:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def set_rng_state(state: dict[str, Any], rngs: dict[str, Rng]) -> None:
    torch.set_rng_state(_unb64(state["torch"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_unb64(s) for s in state["cuda"]])
    for name, g in rngs.items():
        saved = state["stage"].get(name)
        if saved is None:
            raise CheckpointError(f"the checkpoint holds no state for the random generator {name!r}")
        if isinstance(g, torch.Generator):
            g.set_state(_unb64(saved["torch"]))
        else:
            g.bit_generator.state = saved["numpy"]

