"""What `wordbrush bench` measures: one typed config, checked on construction, and the command line that
reproduces it (recorded with the results). No torch here: the CLI can read the defaults for its help."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import WordbrushError
from ..generators import registry

INSTALL_SCRIPT = "../shared/anchors/install-dalle-pytorch.sh"
REFERENCES = ("dalle-pytorch",)
DTYPES = ("float32", "bfloat16")


@dataclass
class BenchConfig:
    model: str = "r1"  # a reference config (reference.REFERENCE_CONFIGS, untrained), a built-in name or a folder
    generator: str = "dalle"  # for a reference config: which generator to build (dalle | maskgit)
    threads: int = 2  # torch.set_num_threads, here and in the reference's process
    device: str = "auto"  # auto | cpu | cuda
    batch_sizes: tuple[int, ...] = (1, 16, 64)  # sampling
    guidance_scales: tuple[float, ...] = (1.0, 3.0)  # 1 = off
    dtypes: tuple[str, ...] = ("float32",)  # "bfloat16": sampling with bf16 weights, training under bf16 autocast
    sample: bool = True
    compile: bool = False  # sampling (pipe.compile()) and training (a compiled forward) through torch.compile
    train: bool = True
    train_batch: int = 32
    train_steps: int = 3  # AdamW steps per timed training run
    repeats: int = 5  # timed runs per case (the median is reported)
    warmup: int = 1  # untimed runs per case before timing
    against: str | None = None  # "dalle-pytorch": also run the reference implementation
    reference_venv: str | None = None  # its venv (install-dalle-pytorch.sh VENV)
    reference_batch: int = 16  # sampling batch of the comparison
    seed: int = 0

    def __post_init__(self) -> None:
        self.batch_sizes = tuple(int(b) for b in self.batch_sizes)
        self.guidance_scales = tuple(float(g) for g in self.guidance_scales)
        self.dtypes = tuple(self.dtypes)
        if self.threads < 1:
            raise WordbrushError(f"threads must be >= 1, got {self.threads}")
        if self.generator not in registry.FAMILIES:
            raise WordbrushError(f"unknown generator {self.generator!r} (known: {', '.join(registry.FAMILIES)})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise WordbrushError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise WordbrushError(f"batch sizes must be >= 1, got {self.batch_sizes}")
        if not self.guidance_scales or min(self.guidance_scales) < 0:
            raise WordbrushError(f"guidance scales must be >= 0, got {self.guidance_scales}")
        if not self.dtypes or set(self.dtypes) - set(DTYPES):
            raise WordbrushError(f"dtypes must be among {', '.join(DTYPES)}, got {self.dtypes}")
        if min(self.train_batch, self.train_steps, self.repeats, self.reference_batch) < 1 or self.warmup < 0:
            raise WordbrushError("train_batch, train_steps, repeats and reference_batch must be >= 1, warmup >= 0")
        if not (self.sample or self.train):
            raise WordbrushError("nothing to measure: both sampling and training are switched off")
        if self.against is not None:
            if self.against not in REFERENCES:
                raise WordbrushError(f"unknown reference {self.against!r} (known: {', '.join(REFERENCES)})")
            if not self.reference_venv:
                raise WordbrushError(f"--against {self.against} needs --reference-venv VENV "
                                     f"(install one with: bash {INSTALL_SCRIPT} VENV)")

    def command_line(self) -> str:
        """The `wordbrush bench` command that reproduces this configuration (recorded with the results)."""
        d = BenchConfig()
        parts = ["wordbrush bench", f"--model {self.model}", f"--threads {self.threads}"]
        if self.generator != d.generator:
            parts.append(f"--generator {self.generator}")
        if self.device != d.device:
            parts.append(f"--device {self.device}")
        if self.sample and self.batch_sizes != d.batch_sizes:
            parts.append("--batch-sizes " + ",".join(map(str, self.batch_sizes)))
        if self.guidance_scales != d.guidance_scales:
            parts.append("--guidance " + ",".join(f"{g:g}" for g in self.guidance_scales))
        parts.append(f"--repeats {self.repeats}")
        if self.train and self.train_batch != d.train_batch:
            parts.append(f"--train-batch {self.train_batch}")
        if self.train and self.train_steps != d.train_steps:
            parts.append(f"--train-steps {self.train_steps}")
        if "bfloat16" in self.dtypes:
            parts.append("--bf16")
        if self.compile:
            parts.append("--compile")
        if not self.sample:
            parts.append("--no-sample")
        if not self.train:
            parts.append("--no-train")
        if self.against:
            parts.append(f"--against {self.against} --reference-venv {self.reference_venv}")
        return " ".join(parts)
