"""The ranks of a run under torchrun: the process group (gloo on CPU, NCCL on GPU) from torchrun's environment, and an
all_gather whose gradient goes back to each rank's own rows."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0


def init_distributed() -> Ranks:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) -> one process group; NCCL on GPU,
    gloo on CPU. A plain `python -m wordbrush train` is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", store=_store(ranks),
                                rank=ranks.rank, world_size=world)
    return ranks


def _store(ranks: Ranks) -> dist.Store:
    """torchrun's rendezvous store, under a prefix of its own per restart: after `--max-restarts` brings the workers
    back, the process group's keys of the attempt before (the peers' old addresses) must not be read again."""
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"  # torchrun hosts the store
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), ranks.world,
                          is_master=not agent and ranks.rank == 0, timeout=timedelta(minutes=10))
    return dist.PrefixStore(f"wordbrush/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


class Gather(torch.autograd.Function):
    """all_gather along dim 0; backward: the gradients of every rank summed, this rank's rows kept (gloo has no
    reduce_scatter)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rank: int, world: int) -> torch.Tensor:
        ctx.rank, ctx.n = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n], None, None
