"""Speed probe for the reference implementation, lucidrains dalle-pytorch 1.6.6, driven by `wordbrush bench
--against dalle-pytorch`. It runs in the reference's own venv (../shared/anchors/install-dalle-pytorch.sh) and
imports nothing from wordbrush, so the two never share a process or a dependency.

    VENV/bin/python benchmarks/dalle_pytorch_probe.py        # then one JSON command per line on stdin

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout (the library's own prints go to
stderr). Every reply has "ok"; a failure is {"ok": false, "error": "..."}.

    {"op": "setup", "config": {...}, "threads": 2, "device": "cpu", "seed": 0}
        config: dim, depth, heads, dim_head, text_len, text_vocab, image_size, vae_layers, num_codes
        -> {"ok": true, "version": "1.6.6", "torch": "...", "params": N}
    {"op": "train", "batch": 32, "steps": 3, "dtype": "float32" | "bfloat16", "memory": false}
        `steps` AdamW steps on random text and image token ids (ids, so its VAE encoder does not run)
        -> {"ok": true, "seconds": s, "peak_mb": MB or null}
    {"op": "sample", "batch": 16, "path": "default" | "cached", "dtype": "float32" | "bfloat16", "memory": false}
        generate_images(..., filter_thres=0.9, use_cache=True) with cond_scale 1 ("default": its cache is
        silently skipped there) or 1.0001 ("cached": the cache runs, with a second, unconditional pass per token).
        The text is cloned for every call because cond_scale != 1 zeroes the prompt in place. "bfloat16": under
        bf16 autocast (its weights stay float32), the same as its bf16 training.
        -> {"ok": true, "seconds": s, "peak_mb": MB or null}
    {"op": "quit"}

Timing is wall-clock around the work only (CUDA synchronised). Peak memory, when asked: CPU = rise of the
process's peak RSS (VmHWM reset through /proc/self/clear_refs), CUDA = torch.cuda.max_memory_allocated rise.
"""

import ctypes
import gc
import json
import sys
import time
import traceback
from contextlib import nullcontext

REPLY = sys.stdout
sys.stdout = sys.stderr  # whatever the library prints must not reach the protocol stream

STATE = {}


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _memory_start(torch, device):
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmRSS") * 1024
    except OSError:
        return None


def _memory_peak_mb(torch, device, start):
    if start is None:
        return None
    if device == "cuda":
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    return max(0, _status_kb("VmHWM") * 1024 - start) / 2**20


def _timed(torch, device, fn, memory):
    start = _memory_start(torch, device) if memory else None
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    return {"ok": True, "seconds": seconds, "peak_mb": _memory_peak_mb(torch, device, start) if memory else None}


def setup(cmd):
    import torch

    try:
        import dalle_pytorch
        from dalle_pytorch import DALLE, DiscreteVAE
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed properly"
        return {"ok": False, "error": f"cannot import dalle_pytorch: {type(e).__name__}: {e}"}
    try:
        from importlib.metadata import version

        ver = version("dalle-pytorch")
    except Exception:  # noqa: BLE001
        ver = getattr(dalle_pytorch, "__version__", "unknown")
    c = cmd["config"]
    torch.set_num_threads(int(cmd.get("threads", 2)))
    torch.manual_seed(int(cmd.get("seed", 0)))
    device = cmd.get("device", "cpu")
    vae = DiscreteVAE(image_size=c["image_size"], num_layers=c["vae_layers"], num_tokens=c["num_codes"],
                      codebook_dim=256, hidden_dim=64).to(device)
    dalle = DALLE(dim=c["dim"], vae=vae, num_text_tokens=c["text_vocab"], text_seq_len=c["text_len"],
                  depth=c["depth"], heads=c["heads"], dim_head=c["dim_head"]).to(device)
    params = [p for p in dalle.parameters() if p.requires_grad]
    STATE.update(torch=torch, device=device, dalle=dalle, cfg=c, seed=int(cmd.get("seed", 0)),
                 opt=torch.optim.AdamW(params, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.01))
    return {"ok": True, "version": ver, "torch": torch.__version__, "params": sum(p.numel() for p in params)}


def _tokens(batch, salt):
    torch, c = STATE["torch"], STATE["cfg"]
    g = torch.Generator().manual_seed(STATE["seed"] * 1000 + salt)
    text = torch.randint(1, c["text_vocab"], (batch, c["text_len"]), generator=g)  # no padding (id 0)
    n_image = (c["image_size"] // 2 ** c["vae_layers"]) ** 2
    image = torch.randint(0, c["num_codes"], (batch, n_image), generator=g)
    return text.to(STATE["device"]), image.to(STATE["device"])


def train(cmd):
    torch, device, dalle, opt = STATE["torch"], STATE["device"], STATE["dalle"], STATE["opt"]
    text, image = _tokens(int(cmd["batch"]), 1)
    dtype = cmd.get("dtype", "float32")
    ctx = (lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)) if dtype == "bfloat16" else nullcontext

    def run():
        dalle.train()
        for _ in range(int(cmd.get("steps", 1))):
            with ctx():
                loss = dalle(text, image, return_loss=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return _timed(torch, device, run, cmd.get("memory", False))


def sample(cmd):
    torch, device, dalle = STATE["torch"], STATE["device"], STATE["dalle"]
    text, _ = _tokens(int(cmd["batch"]), 2)
    cond_scale = {"default": 1.0, "cached": 1.0001}[cmd["path"]]
    bf16 = cmd.get("dtype", "float32") == "bfloat16"
    ctx = (lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)) if bf16 else nullcontext

    def run():
        dalle.eval()
        with torch.no_grad(), ctx():
            dalle.generate_images(text.clone(), filter_thres=0.9, use_cache=True, cond_scale=cond_scale)

    return _timed(torch, device, run, cmd.get("memory", False))


def main():
    ops = {"setup": setup, "train": train, "sample": sample}
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            if cmd.get("op") == "quit":
                break
            if cmd.get("op") != "setup" and not STATE:
                reply = {"ok": False, "error": "send a setup command first"}
            elif cmd.get("op") not in ops:
                reply = {"ok": False, "error": f"unknown op {cmd.get('op')!r}"}
            else:
                reply = ops[cmd["op"]](cmd)
        except Exception as e:  # noqa: BLE001 - reported to the caller, with the traceback on stderr
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
        REPLY.write(json.dumps(reply) + "\n")
        REPLY.flush()


if __name__ == "__main__":
    main()
