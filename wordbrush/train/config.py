"""What every training config shares (each stage's own config sits beside its loop: VAETrainConfig in vae.py,
CLIPTrainConfig in clip.py, DalleTrainConfig and MaskGITTrainConfig in tokens.py, GANTrainConfig in gan.py).
Plain dataclasses, no torch: `wordbrush train STAGE --print-config` lists them."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import check
from ..data.config import DataConfig

# the fixed prompts of the sample grids that the generator stages write while they train
SAMPLE_PROMPTS = (
    "a red circle", "a large blue square", "two green triangles", "three yellow crosses",
    "a purple diamond to the left of a white circle", "an orange square above a cyan triangle",
    "a small white cross", "a blue triangle below a red square",
)


@dataclass
class TrainConfig:
    """The run: its data, its folder, its budget and the loop's clock. Stages override the defaults."""

    data: DataConfig = field(default_factory=DataConfig)
    out: str = "runs/run"  # the run folder: checkpoints, log.jsonl, samples, the final model
    batch_size: int = 64  # the global batch: under torchrun each of N processes takes batch_size / N of it
    # > 0: each process runs its share in pieces of at most this many samples and sums their gradients (gradient
    # accumulation: the same step in less memory); 0 = the whole share at once. The dalle, maskgit and vae stages
    micro_batch: int = 0
    max_steps: int = 20000  # stop at this many optimizer steps in all (a resumed run counts the steps before)
    # > 0: also stop once this much training time is spent, summed over the run's sessions (a resumed run counts
    # the minutes before); the lr schedule then follows whichever of steps and minutes is further along
    max_minutes: float = 0.0
    bf16: bool = True  # bfloat16 autocast (float32 on a CPU without native bf16, with one warning)
    threads: int = 0  # torch threads; 0 = torch's default (OMP_NUM_THREADS when set)
    seed: int = 0
    log_every: int = 50  # steps between log.jsonl records
    checkpoint_every: int = 1000  # steps between checkpoints (out/checkpoints/step_N: complete or absent)
    keep_checkpoints: int = 3  # the newest this many checkpoints are kept
    max_bad_steps: int = 20  # a step with a non-finite loss or gradient is skipped; this many in a row stop the run

    def __post_init__(self) -> None:
        check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        check(self.max_steps >= 1, f"max_steps must be >= 1, got {self.max_steps}")
        check(self.max_minutes >= 0, f"max_minutes must be >= 0, got {self.max_minutes}")
        check(self.micro_batch >= 0, f"micro_batch must be >= 0, got {self.micro_batch}")
        check(self.threads >= 0, f"threads must be >= 0, got {self.threads}")
        check(self.log_every >= 1 and self.checkpoint_every >= 1, "log_every and checkpoint_every must be >= 1")
        check(bool(self.out), "out must name a folder")
        check(self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        check(self.max_bad_steps >= 1, f"max_bad_steps must be >= 1, got {self.max_bad_steps}")


@dataclass
class OneOptimizerConfig(TrainConfig):
    """A stage with one AdamW: linear warm-up, then cosine decay to lr * min_lr_ratio; gradients clipped."""

    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm; 0 = no clipping

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.lr <= 10, f"lr must be in (0, 10], got {self.lr}")
        check(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        check(self.warmup_steps >= 0, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        check(self.weight_decay >= 0 and self.grad_clip >= 0, "weight_decay and grad_clip must be >= 0")
