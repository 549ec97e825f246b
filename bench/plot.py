"""PNG plots of a benchmark results file (written by edgestream-bench).

    python bench/plot.py docs/benchmarks/results.json docs/benchmarks

Per scenario: the latency distribution of every peer, and deliveries per
second over time from the first measured publish. Plus a summary of
delivered events per second by scenario. File names match the references
that edgestream-bench writes into docs/benchmarks.md.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {
    "edgestream": "#f38020",
    "edgestream (bridge)": "#f38020",
    "nchan": "#2b7bb9",
    "django-eventstream": "#44a04a",
    "django-eventstream (valkey)": "#44a04a",
}


def color(peer):
    return COLORS.get(peer, "#777777")


def label(run):
    text = run["peer"]
    if not run["ok"]:
        text += " (FAILED)"
    return text


def latency_plot(name, runs, out):
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for run in runs:
        cdf = run["latency"]["cdf"]
        if not cdf:
            continue
        ax.plot([ms for _, ms in cdf], [p for p, _ in cdf], marker=".", label=label(run), color=color(run["peer"]))
    ax.set_xscale("log")
    ax.set_xlabel("publish → deliver latency, ms (log scale)")
    ax.set_ylabel("percentile")
    ax.set_ylim(0, 100.5)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{name}: latency distribution")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{name}-latency.png")
    plt.close(fig)


def throughput_plot(name, runs, out):
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for run in runs:
        series = run["series"]
        if not series:
            continue
        bucket = run["series_bucket_ms"] / 1000.0
        # Runs longer than 10 s are drawn in 1 s steps, shorter ones as sampled.
        step = max(1, int(round(1.0 / bucket))) if len(series) * bucket > 10 else 1
        series = [sum(series[i : i + step]) for i in range(0, len(series), step)]
        bucket *= step
        xs = [i * bucket for i in range(len(series))]
        ys = [n / bucket for n in series]
        ax.plot(xs, ys, label=label(run), color=color(run["peer"]), linewidth=1.2)
    ax.set_xlabel("seconds since the first measured publish")
    ax.set_ylabel("deliveries per second")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"{name}: deliveries per second")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{name}-throughput.png")
    plt.close(fig)


def summary_plot(scenarios, out):
    peers = []
    for runs in scenarios.values():
        for run in runs:
            base = run["peer"].split(" (")[0]
            if base not in peers:
                peers.append(base)
    names = list(scenarios)
    width = 0.8 / max(1, len(peers))
    fig, ax = plt.subplots(figsize=(7.2, 4.0), dpi=110)
    for i, peer in enumerate(peers):
        xs, ys, hatches = [], [], []
        for j, name in enumerate(names):
            for run in scenarios[name]:
                if run["peer"].split(" (")[0] == peer:
                    xs.append(j + (i - (len(peers) - 1) / 2) * width)
                    ys.append(max(run["delivery"]["per_s"], 1))
                    hatches.append("" if run["ok"] else "//")
        bars = ax.bar(xs, ys, width=width, label=peer, color=color(peer))
        for bar, hatch in zip(bars, hatches):
            bar.set_hatch(hatch)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("delivered events per second (log scale)")
    ax.set_title("Delivered events per second (hatched: run failed, e.g. lost events)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "summary.png")
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    scenarios = {}
    for run in results["runs"]:
        scenarios.setdefault(run["scenario"]["name"], []).append(run)
    for name, runs in scenarios.items():
        latency_plot(name, runs, out)
        throughput_plot(name, runs, out)
    if scenarios:
        summary_plot(scenarios, out)
    print(f"bench/plot.py: plots in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
