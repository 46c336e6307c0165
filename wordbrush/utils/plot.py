"""Training curves as PNG, from a run's log.jsonl."""

from __future__ import annotations

import json
from pathlib import Path


def plot_curves(log_path: str | Path, out_path: str | Path, keys: list[str], title: str = "") -> Path | None:
    """One panel per key (x = step) from a JSONL training log; returns the PNG's path (None: nothing logged)."""
    if not Path(log_path).exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    keys = [k for k in keys if any(r.get(k) for r in records)]  # leave out keys never logged or always 0
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4 * max(1, len(keys)), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        pts = [(r["step"], r[key]) for r in records if r.get(key) is not None]  # null: a skipped step
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if key in ("loss", "recon", "image_loss", "text_loss") and min(p[1] for p in pts) > 0:
            ax.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
