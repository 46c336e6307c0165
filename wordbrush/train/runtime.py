"""The one training loop. The runtime owns the device, the ranks, seeding, the budget and progress bar, the bad-step
guard, logging, checkpoints, resume and the run summary; a stage (vae.py, clip.py, tokens.py, gan.py) owns its
model(s), its data and its step. The whole loop, written out (Runtime.run):

    restore the latest complete checkpoint (--resume), or start at step 0
    while the budget (steps, or minutes summed over every session) is not spent:
        record = stage.step(step, progress)      # this rank's share of the global batch; each optimizer step goes
                                                 # through rt.update(): backward -> all-reduce -> finite? -> clip -> step
        a step with a non-finite loss or gradient is skipped and counted; K in a row stop the run
        step += 1
        every log_every:         metrics averaged over ranks -> log.jsonl (+ TensorBoard when installed), bar
        stage.periodic(step):    sample grids, held-out figures (rank 0)
        every checkpoint_every:  a checkpoint (checkpoints.py: complete or absent)
        SIGTERM or Ctrl-C:       (one process) finish the step, write a checkpoint, stop; --resume goes on from
                                 there (a second Ctrl-C stops at once). Under torchrun its own restarts do this
    the last checkpoint; the final model folder (written beside, renamed into place); stage.finish -> summary

Under `torchrun` every rank runs this same loop: `batch_size` is the global batch, `rt.share(b)` is the rank's
disjoint slice of it, gradients are averaged across ranks by one all-reduce per optimizer step (gloo on CPU, NCCL on
GPU), so 1 and N processes take the same steps. Only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..config import to_dict
from ..errors import CheckpointError, WordbrushError
from ..utils.atomic import finite_json, replace_into, write_bytes, write_json
from .checkpoints import (
    RNG,
    Checkpoints,
    Rng,
    load_state,
    rng_state,
    save_state,
    set_rng_state,
)
from .common import Budget, setup_torch
from .config import TrainConfig
from .distributed import Gather, init_distributed
from .runfolder import RunLock, remove_leftovers
from .signals import StopSignals

LEGACY_STATE = "train_state.safetensors"  # the one in-place checkpoint of wordbrush before the runtime


class Stage(Protocol):
    """What a stage gives the runtime."""

    modules: dict[str, torch.nn.Module]  # every trained module (raw weights, EMA, discriminator): checkpointed
    optimizers: dict[str, torch.optim.Optimizer]
    rngs: dict[str, Rng]  # the stage's own random generators: checkpointed per rank
    data: Any  # its TrainingData: the items it skipped are listed in the run folder's skipped.json

    def step(self, step: int, progress: float) -> dict[str, Any]: ...  # one step; figures of this rank's share
    def periodic(self, step: int, record: dict[str, Any] | None) -> None: ...  # rank 0, after each step
    def save(self, folder: Path) -> None: ...  # the model folder (from_pretrained or the stage's loader reads it)
    def finish(self, step: int, elapsed: float) -> dict[str, Any]: ...  # rank 0: final figures for the summary


class Runtime:
    def __init__(self, cfg: TrainConfig, resume: bool = False, progress_bar: bool = True, name: str = "train"):
        self.cfg, self.name = cfg, name
        self.ranks = init_distributed()
        self.rank, self.world, self.main = self.ranks.rank, self.ranks.world, self.ranks.rank == 0
        self.device = (torch.device("cuda", self.ranks.local_rank) if torch.cuda.is_available()
                       else torch.device("cpu"))
        self.progress_bar = progress_bar and self.main
        if cfg.batch_size % self.world:
            raise WordbrushError(f"batch_size ({cfg.batch_size}) is the global batch: it must divide evenly among "
                                 f"the {self.world} processes")
        setup_torch(cfg.threads, cfg.seed)  # the same on every rank: every rank builds the same initial weights
        self.out = Path(cfg.out)
        self.store = Checkpoints(self.out / "checkpoints", cfg.keep_checkpoints)
        self.lock: RunLock | None = None
        self._tb: Any = None
        candidates: list[str] = []
        if self.main:
            if self.out.exists() and not self.out.is_dir():
                raise WordbrushError(f"--out {self.out} is a file, not a folder")
            self.out.mkdir(parents=True, exist_ok=True)
            self.lock = RunLock(self.out)
            try:
                if (self.out / LEGACY_STATE).exists() and not self.store.folders():
                    raise WordbrushError(f"{self.out} holds a run of an older wordbrush (one in-place checkpoint), "
                                         f"which cannot be resumed exactly: choose another --out")
                remove_leftovers(self.out)
                candidates = [str(p) for p in self.store.complete(say=self.say)]
                if candidates and not resume:
                    raise WordbrushError(f"{self.out} already holds a training run; pass --resume to continue it or "
                                         f"choose another --out")
            except BaseException:
                self.close()
                raise
        candidates = self.broadcast(candidates)
        self.candidates = [Path(p) for p in candidates] if resume else []
        if resume and not self.candidates:
            self.say(f"{self.out}: no complete checkpoint to resume from, starting at step 0")
        self.skipped_steps, self._bad, self._loss_bad = 0, False, False

    def close(self) -> None:
        """Let go of the run folder (the lock); the process ending does the same."""
        if self._tb:
            self._tb.close()
            self._tb = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- helpers

    @property
    def resume_folder(self) -> Path | None:
        """The checkpoint a resumed run starts from (the stage reads its tokenizer there), or None."""
        return self.candidates[0] if self.candidates else None

    def say(self, text: str) -> None:
        if self.main:
            print(text, flush=True)

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def share(self, n: int) -> slice:
        """This rank's disjoint slice of a global batch of n."""
        k = n // self.world
        return slice(self.rank * k, (self.rank + 1) * k)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The rows of every rank's `x`, in rank order, with gradients flowing back to each rank's own rows (a
        contrastive loss over the global batch); `x` itself at one process."""
        return x if self.world == 1 else Gather.apply(x, self.rank, self.world)

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        if self.main:
            write_json(self.out / name, data)

    def update(self, loss: torch.Tensor, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter],
               clip: float = 0.0) -> bool:
        """One optimizer step from `loss` (this rank's share, a mean over it): backward, then step()."""
        opt.zero_grad(set_to_none=True)
        self.backward(loss)
        return self.step(opt, params, clip)

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of `loss` (a micro-batch's part of the rank's loss); remember a non-finite one."""
        loss.backward()
        self._loss_bad = self._loss_bad or not bool(torch.isfinite(loss.detach()).all())

    def step(self, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], clip: float = 0.0) -> bool:
        """The accumulated gradients averaged over the ranks, then a step only when every loss since the last step
        and every gradient are finite (else the step is skipped and counted); clipped to norm `clip` (0 = none)."""
        bad = torch.tensor([float(self._loss_bad)], device=params[0].device)
        self._loss_bad = False
        if self.world > 1:
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat = torch.cat([g.reshape(-1) for g in grads] + [bad])  # one all-reduce for all of them
            dist.all_reduce(flat)
            flat[:-1] /= self.world
            bad = flat[-1:]
            offset = 0
            for p, g in zip(params, grads):
                p.grad = flat[offset : offset + g.numel()].view_as(p).clone()
                offset += g.numel()
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else math.inf)
        if bad.item() > 0 or not torch.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            self._bad = True
            return False
        opt.step()
        return True

    def micro_batches(self, n: int) -> list[slice]:
        """This rank's share of n, in pieces of at most cfg.micro_batch (gradient accumulation; 0 = one piece)."""
        m = self.cfg.micro_batch or n
        return [slice(i, min(i + m, n)) for i in range(0, n, m)]

    def _sync_buffers(self, modules: dict[str, torch.nn.Module]) -> None:
        """Running statistics (the VQ codebook's EMA) follow rank 0, as DDP's broadcast_buffers does."""
        for m in modules.values():
            for b in m.buffers():
                if b.is_floating_point():
                    dist.broadcast(b, 0)

    def _sync_params(self, modules: dict[str, torch.nn.Module]) -> None:
        for m in modules.values():
            for t in m.state_dict().values():
                if t.is_floating_point():
                    dist.broadcast(t, 0)

    def _reduce(self, record: dict[str, Any]) -> dict[str, Any]:
        """Every number of the record averaged over the ranks."""
        keys = sorted(k for k, v in record.items() if isinstance(v, (int, float, torch.Tensor)) and k != "step")
        vals = torch.tensor([float(record[k]) for k in keys], dtype=torch.float64)
        if self.world > 1:
            dist.all_reduce(vals)
            vals /= self.world
        return {**record, **{k: v.item() for k, v in zip(keys, vals)}}

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(finite_json(record), allow_nan=False) + "\n")
        if self._writer():
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, record["step"])

    def _writer(self) -> Any:
        """The TensorBoard writer, or False when tensorboard is not installed (pip install wordbrush[tensorboard])."""
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self._tb = SummaryWriter(str(self.out / "tensorboard"))
            except ImportError:
                self._tb = False
        return self._tb

    def image(self, tag: str, path: Path, step: int) -> None:
        """A sample grid the stage wrote (PNG) into TensorBoard too, when it is installed (rank 0)."""
        if self.main and self._writer():
            import numpy as np
            from PIL import Image

            with Image.open(path) as im:
                self._tb.add_image(tag, np.asarray(im.convert("RGB")), step, dataformats="HWC")

    def _trim_log(self, step: int) -> None:
        """A resumed run's log: the records up to its checkpoint (a kill may have left later ones, or half a line)."""
        path = self.out / "log.jsonl"
        if not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        write_bytes(path, "".join(line + "\n" for line in kept).encode("utf-8"))

    # ------------------------------------------------------------------------------------------ checkpoints

    def checkpoint(self, stage: Stage, step: int, elapsed: float) -> None:
        rngs = [rng_state(stage.rngs)]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, rng_state(stage.rngs))
        if self.main:
            extra = {"step": step, "elapsed": elapsed, "skipped_steps": self.skipped_steps}

            def write(folder: Path) -> None:
                stage.save(folder)
                save_state(folder, stage.modules, stage.optimizers, extra)
                write_json(folder / RNG, {"world": self.world, "ranks": rngs})

            self.store.save(step, write, {"elapsed": elapsed, "skipped_steps": self.skipped_steps,
                                          "world": self.world, "config": to_dict(self.cfg)})
        if self.world > 1:
            dist.barrier()

    def restore(self, stage: Stage) -> tuple[int, float]:
        """Load the newest complete checkpoint that fits (a mismatched one is refused in one line and the one before
        it is tried); (step, elapsed seconds), or (0, 0.0) for a fresh run."""
        for i, folder in enumerate(self.candidates):
            try:
                meta = json.loads((folder / "complete.json").read_text(encoding="utf-8"))
                load_state(folder, stage.modules, stage.optimizers)
                rng = json.loads((folder / RNG).read_text(encoding="utf-8"))
                if rng["world"] == self.world:
                    set_rng_state(rng["ranks"][self.rank], stage.rngs)
                else:
                    self.say(f"{folder} was written by {rng['world']} processes, this run has {self.world}: the "
                             f"random generators start afresh (the run is no longer bit-identical to one process)")
            except (CheckpointError, OSError, KeyError, ValueError) as e:
                nxt = self.candidates[i + 1] if i + 1 < len(self.candidates) else None
                self.say(f"checkpoint {folder} refused: {e}" + (f"; using {nxt}" if nxt else ""))
                continue
            self.skipped_steps = int(meta.get("skipped_steps", 0))
            self.say(f"resuming {self.out} at step {meta['step']} from {folder}")
            return int(meta["step"]), float(meta["elapsed"])
        if self.candidates:
            raise WordbrushError(f"no checkpoint in {self.store.root} fits this run (see above); choose another --out")
        return 0, 0.0

    # ------------------------------------------------------------------------------------------------ the loop

    def run(self, stage: Stage, desc: str) -> dict[str, Any]:
        with StopSignals(enabled=self.world == 1) as self.stop:
            return self._run(stage, desc)

    def _run(self, stage: Stage, desc: str) -> dict[str, Any]:
        cfg = self.cfg
        try:
            step, elapsed = self.restore(stage)
            if self.world > 1:
                self._sync_params(stage.modules)
                if self.rank > 0 and not self.candidates:  # a fresh run: each rank its own noise (rank 0 keeps
                    torch.manual_seed(cfg.seed * 1009 + self.rank)  # the stream of one process); resumed: restored
            if self.main:
                self._trim_log(step)
                write_json(self.out / "train_config.json", to_dict(cfg))
            budget = Budget(cfg.max_steps, cfg.max_minutes, elapsed)
            bar = tqdm(total=budget.bar_total, initial=step, desc=desc, unit="step", disable=not self.progress_bar,
                       dynamic_ncols=True)
            in_a_row, last_saved = 0, step if self.candidates else -1
            t_log = time.perf_counter()
            while not budget.done(step):
                self._bad = False
                record = stage.step(step, budget.progress(step))
                if self.world > 1:
                    self._sync_buffers(stage.modules)
                in_a_row = in_a_row + 1 if self._bad else 0
                self.skipped_steps += self._bad
                step += 1
                bar.update(1)
                if in_a_row >= cfg.max_bad_steps:
                    good = self.store.complete(say=lambda _: None)
                    raise WordbrushError(
                        f"training stopped at step {step}: {in_a_row} steps in a row had a non-finite loss or "
                        f"gradient (lower the learning rate); last good checkpoint: "
                        f"{good[0] if good else 'none (no checkpoint was written yet)'}")
                logged = None
                if step % cfg.log_every == 0:
                    now = time.perf_counter()
                    seconds, t_log = now - t_log, now
                    logged = self._reduce({"step": step, "elapsed": round(budget.elapsed, 1), **record})
                    logged["samples_per_s"] = cfg.batch_size * cfg.log_every / seconds
                    logged["skipped_steps"] = self.skipped_steps
                if self.main:
                    stage.periodic(step, logged)  # may add figures to the record, or stop the run
                    if logged is not None:
                        self._log(logged)
                        shown = {k: f"{logged[k]:.4f}" for k in ("loss", "d_loss", "g_loss") if k in logged}
                        bar.set_postfix(**shown, **budget.postfix())  # the gan logs D's and G's loss
                if step % cfg.checkpoint_every == 0:
                    self.checkpoint(stage, step, budget.elapsed)
                    last_saved = step
                if self.stop.name is not None:
                    bar.close()
                    if last_saved != step:
                        self.checkpoint(stage, step, budget.elapsed)
                    raise WordbrushError(f"stopped by {self.stop.name} at step {step}; its checkpoint is written: "
                                         "run the same command with --resume to go on")
            bar.close()
            if last_saved != step:
                self.checkpoint(stage, step, budget.elapsed)
            if not self.main:
                return {}
            tmp = self.out / f".final.tmp-{os.getpid()}"
            tmp.mkdir()
            stage.save(tmp)
            replace_into(tmp, self.out)  # the final model: every file renamed into place
            summary = stage.finish(step, budget.elapsed)
            summary.update(steps=step, skipped_steps=self.skipped_steps, processes=self.world)
            write_json(self.out / "train_summary.json", summary)
            write_json(self.out / "skipped.json", stage.data.skipped_record())  # which files, for which reason
            return summary
        finally:
            self.close()
