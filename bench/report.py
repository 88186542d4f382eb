"""Shared by the bench scripts: median/min-max summaries of repeated measurements, and PNG bar charts.

Every benchmark repeats its measurements and reports the median with the min-max spread; a
ratio is computed per repetition (both sides measured under the same load) and then
summarised, instead of dividing two medians. Plots use matplotlib's Agg backend (no display).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

Stat = dict  # {"median", "min", "max", "n", "values"}


def summarize(values: Sequence[float]) -> Stat:
    """Median, min, max and count of repeated measurements (the raw values are kept for the JSON)."""
    xs = [float(x) for x in values]
    if not xs:
        raise ValueError("summarize: no measurements")
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs), "values": xs}


def ratio(num: Sequence[float], den: Sequence[float], offset: float = 0.0) -> Stat:
    """Summary of num[i] / den[i] + offset, one ratio per repetition (paired: same run, same load)."""
    if len(num) != len(den):
        raise ValueError(f"ratio: {len(num)} numerators vs {len(den)} denominators")
    return summarize([a / b + offset for a, b in zip(num, den, strict=True)])


def fmt(stat: Stat, spec: str = ".2f", unit: str = "") -> str:
    """``median [min-max]`` with one number format, e.g. ``2.31x [1.90-2.62]``."""
    return f"{stat['median']:{spec}}{unit} [{stat['min']:{spec}}-{stat['max']:{spec}}]"


def pct(stat: Stat) -> str:
    """A fractional change as signed percent: ``+0.5 % [-1.2-+3.0]``."""
    return f"{100 * stat['median']:+.1f} % [{100 * stat['min']:+.1f}..{100 * stat['max']:+.1f}]"


@dataclass
class Panel:
    """One bar chart: x groups, each with one bar per series (a Stat -> median bar, min-max error bar)."""

    title: str
    ylabel: str
    bars: Mapping[str, Stat | Mapping[str, Stat]]
    log: bool = False
    hline: tuple[float, str] | None = None  # a target or reference line: (y, label)
    width: float = 1.0  # relative to the other panels

    def groups(self) -> dict[str, dict[str, Stat]]:
        out = {}
        for group, v in self.bars.items():
            out[group] = {"": v} if "median" in v else dict(v)
        return out


def _label(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"


def bar_chart(path: str | Path, panels: Sequence[Panel], title: str = "", dpi: int = 100) -> Path:
    """Side-by-side panels of grouped bars with min-max error bars, written as a PNG."""
    if not panels:
        raise ValueError("bar_chart: no panels")
    widths = [p.width for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * sum(widths), 3.8), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, panel in zip(axes[0], panels, strict=True):
        groups = panel.groups()
        series = list(dict.fromkeys(s for g in groups.values() for s in g))
        width = 0.8 / len(series)
        for j, s in enumerate(series):
            xs, med, lo, hi = [], [], [], []
            for i, g in enumerate(groups.values()):
                if s in g:
                    st = g[s]
                    xs.append(i - 0.4 + width * (j + 0.5))
                    med.append(st["median"])
                    lo.append(st["median"] - st["min"])
                    hi.append(st["max"] - st["median"])
            bars = ax.bar(xs, med, width * 0.9, yerr=[lo, hi], capsize=3, label=s or None,
                          color=f"C{j}", ecolor="black", error_kw={"linewidth": 1})
            ax.bar_label(bars, labels=[_label(m) for m in med], fontsize=7, padding=2)
        if panel.hline:
            ax.axhline(panel.hline[0], color="tab:red", linestyle="--", linewidth=1, label=panel.hline[1])
        ax.set_xticks(range(len(groups)), list(groups), fontsize=8, rotation=0)
        ax.set_ylabel(panel.ylabel)
        ax.set_title(panel.title, fontsize=10)
        ax.margins(y=0.15)
        if panel.log:
            lowest = min(st["min"] for g in groups.values() for st in g.values())
            ax.set_yscale("log")
            ax.set_ylim(bottom=10 ** math.floor(math.log10(lowest)) if lowest > 0 else None)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        if len(series) > 1 or panel.hline:  # a legend row in headroom above the tallest bar
            lo, hi = ax.get_ylim()
            ax.set_ylim(lo, hi * 3 if panel.log else hi * 1.2)
            entries = len(series) + bool(panel.hline)
            ax.legend(fontsize=7, loc="upper center", ncol=entries if entries <= 4 else 2, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def add_plots_arg(ap, name: str) -> None:
    """The common ``--plots-dir`` option (default bench/results, which git ignores)."""
    ap.add_argument("--plots-dir", default=str(Path(__file__).resolve().parent / "results"),
                    help=f"where to write {name} (docs/img for the figures the docs show)")
