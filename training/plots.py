"""Run plots as PNG files (matplotlib's Agg backend: no display needed, safe in workers)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def training_curve(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Train loss and validation t2v Geom per epoch."""
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h.get("train/loss", np.nan) for h in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    val = [(h["epoch"], h["val/t2v/Geom"]) for h in history if "val/t2v/Geom" in h]
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val, strict=True), "s-", color="tab:orange", label="val t2v Geom")
        ax2.set_ylabel("val t2v Geom", color="tab:orange")
    ax.set_title(title or "training curve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def rank_distribution(ranks: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Histogram of the test text→video ranks (1-based, log bins) and the recall-at-k curve."""
    r = np.asarray(ranks, dtype=float) + 1
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.5))
    if r.size:
        bins = np.unique(np.geomspace(1, max(r.max(), 2) + 1, 20).round())
        ax1.hist(r, bins=bins, color="tab:blue")
        ax1.set_xscale("log")
        ks = np.arange(1, int(r.max()) + 1)
        ax2.plot(ks, [(r <= k).mean() * 100 for k in ks], color="tab:green")
        ax2.set_xscale("log")
    ax1.set_xlabel("rank of the correct video (1 = best)")
    ax1.set_ylabel("queries")
    ax2.set_xlabel("k")
    ax2.set_ylabel("R@k (%)")
    fig.suptitle(title or "test text→video rank distribution")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
