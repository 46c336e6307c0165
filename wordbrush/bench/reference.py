"""The reference implementation, lucidrains dalle-pytorch 1.6.6, as a subprocess client: it runs
benchmarks/dalle_pytorch_probe.py with its own venv's python and is driven one JSON line at a time (the protocol
is in that script's docstring). The two implementations never share a process or a dependency."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..errors import WordbrushError
from .config import INSTALL_SCRIPT
from .timing import Case

PROBE = Path(__file__).resolve().parents[2] / "benchmarks" / "dalle_pytorch_probe.py"


def reference_python(venv: str | Path) -> Path:
    """VENV/bin/python, or a one-line error saying how to install the reference."""
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        raise WordbrushError(f"no dalle-pytorch venv at {venv} (no {python}); install it with: "
                             f"bash {INSTALL_SCRIPT} {venv}")
    return python


def reference_config(pipe) -> dict[str, int]:
    """Our pipeline's shapes in the reference's terms (its VAE only decodes here: 3 downsamples for R1)."""
    c, v = pipe.generator.cfg, pipe.vae.cfg
    return {"dim": c.dim, "depth": c.depth, "heads": c.heads, "dim_head": c.dim // c.heads, "text_len": c.text_len,
            "text_vocab": c.text_vocab, "image_size": v.image_size, "vae_layers": len(v.channels),
            "num_codes": c.image_vocab}


class ReferenceProbe:
    """benchmarks/dalle_pytorch_probe.py in the reference's venv, driven one JSON line at a time."""

    def __init__(self, venv: str | Path, config: dict[str, int], threads: int, device: str, seed: int = 0):
        python = reference_python(venv)
        if not PROBE.exists():
            raise WordbrushError(f"the reference probe {PROBE} is missing (it ships in the source repository)")
        self.venv = venv
        self._stderr = tempfile.TemporaryFile(mode="w+")
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([str(python), str(PROBE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, env=env)
        try:
            self.info = self.ask({"op": "setup", "config": config, "threads": threads, "device": device,
                                  "seed": seed})
        except WordbrushError as e:
            self.close()
            raise WordbrushError(f"cannot run dalle-pytorch from {venv} ({e}); install it with: "
                                 f"bash {INSTALL_SCRIPT} {venv}") from None

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        """Send one command, return its reply; a dead probe, a non-JSON line or {"ok": false} is a WordbrushError."""
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.proc.wait(timeout=30)
            self._stderr.seek(0)
            tail = [l for l in self._stderr.read().splitlines() if l.strip()]
            raise WordbrushError(f"the probe exited with code {self.proc.returncode}"
                                 + (f": {tail[-1].strip()}" if tail else ""))
        try:
            reply = json.loads(line)
        except json.JSONDecodeError:
            raise WordbrushError(f"the probe answered something that is not JSON: {line.strip()[:200]}") from None
        if not reply.get("ok"):
            raise WordbrushError(str(reply.get("error", "unknown failure")))
        return reply

    def case(self, key: str, command: dict[str, Any], work: int, info: dict[str, Any]) -> Case:
        """A Case timed by the probe (its own clock around its own work); a failure is recorded, not raised."""

        def run(measure_memory: bool) -> tuple[float, float | None]:
            try:
                r = self.ask({**command, "memory": measure_memory})
            except WordbrushError as e:
                raise WordbrushError(f"dalle-pytorch {command['op']} failed: {e}") from None
            return r["seconds"], r.get("peak_mb")

        return Case(key, run, work, info, optional=True)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
