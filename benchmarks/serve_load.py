"""Load on `wordbrush serve`: N concurrent clients for T seconds on loopback, beside the offline batch throughput of
the same model and sampling settings measured in the same run.

    python benchmarks/serve_load.py                       # 64 clients x 60 s on the built-in shapes, candidates=1
    python benchmarks/serve_load.py --clients 8 --seconds 10 --json out.json

Steps, one after another so that they never share the CPU: (1) offline: `pipe.draw` on batches of --max-batch images
for --offline-seconds; (2) the server in its own process (python -m wordbrush serve), warmed up for --warmup seconds of
the same load; its RSS; (3) the measured load; its RSS again. Each client sends one request at a time (n images, a
random seed, prompts in turn) and counts statuses; a request that fails below HTTP (reset, refused, timeout) counts
as a dropped connection. Prints a Markdown table (and --json writes the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ["a red circle", "two blue squares", "a green triangle to the left of a yellow cross",
           "a large purple diamond", "three white circles", "a small orange square above a cyan circle"]


def offline_throughput(args) -> dict:
    import torch

    from wordbrush import TextToImagePipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = TextToImagePipeline.from_pretrained(args.model)
    options = pipe.sampling_options(candidates=args.candidates)
    b = args.max_batch
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(b)]
    pipe.draw(prompts, list(range(b)), options, batch_size=b * options.candidates)  # warm-up
    images, start, seed = 0, time.perf_counter(), 1000
    while time.perf_counter() - start < args.offline_seconds:
        pipe.draw(prompts, list(range(seed, seed + b)), options, batch_size=b * options.candidates)
        images, seed = images + b, seed + b
    seconds = time.perf_counter() - start
    return {"images_per_s": images / seconds, "images": images, "seconds": seconds, "batch": b,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start_server(args, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "wordbrush", "serve", "--model", args.model, "--port", str(port),
           "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
           "--max-queue", str(args.max_queue), "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)  # torch's intra-op threads in the server, as offline
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # a separate process: nothing to wait on but its health route
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stderr.read()}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become healthy in 120 s")


async def load(base: str, args, seconds: float, seed: int) -> dict:
    statuses, latencies, dropped, images = Counter(), [], Counter(), 0
    limits = httpx2.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx2.AsyncClient(base_url=base, limits=limits, timeout=args.timeout) as client:
        stop = time.monotonic() + seconds

        async def one_client(k: int) -> None:
            nonlocal images
            rng = random.Random(seed * 1000 + k)
            i = k
            while time.monotonic() < stop:
                body = {"prompt": PROMPTS[i % len(PROMPTS)], "n": args.n, "seed": rng.randrange(2**31),
                        "candidates": args.candidates}
                i += 1
                t = time.perf_counter()
                try:
                    r = await client.post("/v1/images/generations", json=body)
                except httpx2.TransportError as e:
                    dropped[type(e).__name__] += 1
                    continue
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                    images += len(r.json()["data"])

        start = time.perf_counter()
        await asyncio.gather(*(one_client(k) for k in range(args.clients)))
        wall = time.perf_counter() - start
    lat = np.array(latencies) if latencies else np.array([float("nan")])
    return {"seconds": wall, "images": images, "images_per_s": images / wall, "requests": sum(statuses.values()),
            "statuses": dict(sorted(statuses.items())), "dropped": dict(dropped),
            "dropped_total": sum(dropped.values()),
            "p50_s": float(np.percentile(lat, 50)), "p99_s": float(np.percentile(lat, 99)),
            "max_s": float(lat.max())}


def machine() -> str:
    try:
        info = dict(line.split(":", 1) for line in subprocess.run(["lscpu"], capture_output=True, text=True)
                    .stdout.splitlines() if ":" in line)
        return f"{info.get('Model name', '?').strip()}, {info.get('CPU(s)', '?').strip()} CPUs"
    except OSError:
        return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shapes")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--warmup", type=float, default=10, help="seconds of load before the first RSS reading")
    p.add_argument("--offline-seconds", type=float, default=20)
    p.add_argument("--n", type=int, default=1, help="images per request")
    p.add_argument("--candidates", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=10)
    p.add_argument("--max-queue", type=int, default=256)
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads, offline and in the server (0: torch's default)")
    p.add_argument("--timeout", type=float, default=120, help="per request, seconds")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()

    offline = offline_throughput(args)
    print(f"offline: {offline['images_per_s']:.1f} images/s (batches of {args.max_batch})", file=sys.stderr)
    port = free_port()
    proc = start_server(args, port)
    base = f"http://127.0.0.1:{port}"
    try:
        rss_idle = rss_mib(proc.pid)
        asyncio.run(load(base, args, args.warmup, seed=1))
        health0 = httpx2.get(f"{base}/healthz").json()
        rss_before = rss_mib(proc.pid)
        served = asyncio.run(load(base, args, args.seconds, seed=2))
        rss_after = rss_mib(proc.pid)
        health1 = httpx2.get(f"{base}/healthz").json()
    finally:
        proc.terminate()
        proc.wait(30)
    batches = health1["batches"] - health0["batches"]
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "python": platform.python_version(),
        "settings": {k: getattr(args, k) for k in ("model", "clients", "seconds", "n", "candidates", "max_batch",
                                                    "max_wait_ms", "max_queue", "threads")},
        "offline": offline, "served": served,
        "mean_batch": (health1["images"] - health0["images"]) / batches if batches else 0.0,
        "ratio": served["images_per_s"] / offline["images_per_s"],
        "rss_mib": {"idle": rss_idle, "before": rss_before, "after": rss_after,
                    "growth": (rss_after - rss_before) / rss_before},
    }
    fivexx = sum(v for k, v in served["statuses"].items() if k >= 500)
    print(f"| clients × s | images/s served | offline | ratio | p50 / p99 latency | statuses | dropped | mean batch "
          f"| RSS before → after |\n|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.clients} × {args.seconds:g} | {served['images_per_s']:.1f} | {offline['images_per_s']:.1f} | "
          f"{result['ratio']:.0%} | {served['p50_s']:.2f} / {served['p99_s']:.2f} s | "
          f"{', '.join(f'{k}: {v}' for k, v in served['statuses'].items())} | {served['dropped_total']} | "
          f"{result['mean_batch']:.1f} | {rss_before:.0f} → {rss_after:.0f} MiB "
          f"({result['rss_mib']['growth']:+.1%}) |")
    print(f"5xx: {fivexx}; bars: zero 5xx {'met' if fivexx == 0 else 'MISSED'}, zero dropped "
          f"{'met' if served['dropped_total'] == 0 else 'MISSED'}, ratio ≥ 70% "
          f"{'met' if result['ratio'] >= 0.7 else 'MISSED'}, RSS growth < 10% "
          f"{'met' if result['rss_mib']['growth'] < 0.1 else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
