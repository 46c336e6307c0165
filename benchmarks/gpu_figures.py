"""GPU figures in one self-contained run (issue: speed, item 5): a >= 100M-parameter `dalle` config trained for a
few minutes under bf16 autocast, then sampled with the KV cache. Reports the measured bf16 matmul ceiling,
training tokens/s, model FLOPs utilisation (MFU) against that ceiling, and sampling images/s.

    python benchmarks/gpu_figures.py --minutes 3 --json gpu.json          # on the GPU machine
    python benchmarks/gpu_figures.py --tiny --device cpu --minutes 0.1    # a smoke test of the script itself

Training data are random token sequences of the config's shape: the figure is the model's throughput, not
what it learns (the shapes data pipeline renders on the CPU and would measure that instead).

FLOPs per trained token (forward + backward): 6 * N (N = parameters in matmuls, embeddings excluded) plus
attention's 12 * depth * T * dim (T = sequence length), as in the PaLM paper's MFU appendix.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from wordbrush.generators.dalle import DALLE, DalleConfig
from wordbrush.generators.options import SampleOptions
from wordbrush.train.common import param_groups

BIG = dict(text_vocab=16384, text_len=64, image_vocab=8192, image_grid=16, dim=1024, depth=12, heads=16)
TINY = dict(text_vocab=512, text_len=8, image_vocab=64, image_grid=4, dim=64, depth=2, heads=4)


def matmul_ceiling(device: torch.device, n: int, repeats: int = 10) -> float:
    """bf16 matmul FLOP/s of an n x n x n product, the best of `repeats` timed runs."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    best = float("inf")
    for _ in range(repeats + 2):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_params(model: DALLE) -> int:
    """Parameters that take part in matmuls per token: everything but embeddings, positions and norms."""
    skip = ("text_emb", "image_emb", "text_pos", "row_pos", "col_pos")
    return sum(p.numel() for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith(skip))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=3.0, help="training time after warm-up")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training model")
    ap.add_argument("--tiny", action="store_true", help="a tiny config: tests the script, not the GPU")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True

    cfg = DalleConfig(**(TINY if args.tiny else BIG))
    model = DALLE(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    T = cfg.text_len + cfg.image_len
    flops_per_token = 6 * matmul_params(model) + 12 * cfg.depth * T * cfg.dim
    ceiling = matmul_ceiling(device, 256 if args.tiny else 8192)
    opt = torch.optim.AdamW(param_groups(model, 0.01), lr=3e-4, betas=(0.9, 0.95), fused=device.type == "cuda")
    step_fn = torch.compile(model) if args.compile else model

    def batch():
        text = torch.randint(1, cfg.text_vocab, (args.batch, cfg.text_len), device=device)
        image = torch.randint(0, cfg.image_vocab, (args.batch, cfg.image_len), device=device)
        return text, image

    def train_step():
        text, image = batch()
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = step_fn(text, image).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    model.train()
    for _ in range(3):  # warm-up (and compilation)
        train_step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.minutes * 60:
        loss = train_step()
        steps += 1
        if steps % 10 == 0:
            _sync(device)
    _sync(device)
    train_s = time.perf_counter() - t0
    tokens_s = steps * args.batch * T / train_s
    mfu = tokens_s * flops_per_token / ceiling

    model.eval()
    text = torch.randint(1, cfg.text_vocab, (args.sample_batch, cfg.text_len), device=device)
    gens = [torch.Generator().manual_seed(i) for i in range(args.sample_batch)]
    with torch.autocast(device.type, dtype=torch.bfloat16):
        model.sample(text, gens, SampleOptions())  # warm-up
        _sync(device)
        t = time.perf_counter()
        model.sample(text, gens, SampleOptions())
        _sync(device)
    images_s = args.sample_batch / (time.perf_counter() - t)

    figures = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "config": TINY if args.tiny else BIG, "parameters": n_params,
        "sequence": T, "batch": args.batch, "compiled": args.compile,
        "bf16_matmul_tflops": ceiling / 1e12, "train_steps": steps, "train_seconds": round(train_s, 1),
        "final_loss": float(loss), "tokens_per_s": tokens_s, "model_tflops": tokens_s * flops_per_token / 1e12,
        "mfu": mfu, "sample_batch": args.sample_batch, "sample_images_per_s": images_s,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
