"""The benchmark as one picture (PNG): throughput, latency and CPU per order, telemetry on and off.

``python -m benchmarks.chart reports/bench/bench-<time>.json`` draws it again from a run's JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # files only: no display here, and none wanted

import matplotlib.pyplot as plt

MODES = {"off": ("telemetry off", "tab:blue"), "on": ("telemetry on (100 % sampled, exported)", "tab:orange")}


def _series(
    axes: Any, steps: list[dict[str, Any]], figure: str, style: str, *, colour: str, label: str, **more: Any
) -> None:
    """One figure of the steps against the rate offered."""
    offered = [step["target_per_second"] for step in steps]
    axes.plot(offered, [step[figure] for step in steps], style, color=colour, label=label, **more)


def draw(results: dict[str, Any], path: Path) -> Path:
    runs: dict[str, dict[str, Any]] = results["pipeline"]
    figure, (throughput, latency, cpu) = plt.subplots(1, 3, figsize=(18, 5.5), constrained_layout=True)
    figure.suptitle(f"make bench, {results['when']} ({results['machine']['cpus']} CPUs)")

    highest = max(step["target_per_second"] for run in runs.values() for step in [*run["steps"], *run["overload"]])
    throughput.plot([0, highest], [0, highest], color="lightgrey", linestyle="--", label="accepted = offered")
    for mode, run in runs.items():
        label, colour = MODES[mode]
        steps, past = run["steps"], run["overload"]
        _series(throughput, steps, "accepted_per_second", "o-", colour=colour, label=label)
        _series(
            throughput,
            past,
            "accepted_per_second",
            "^",
            colour=colour,
            label=f"past capacity (2x, 4x), {mode}",
            markersize=9,
        )
        _series(latency, steps, "api_p99_ms", "o-", colour=colour, label=f"API p99, {mode}")
        _series(latency, steps, "notified_p99_ms", "s--", colour=colour, label=f"notified p99, {mode}")
        _series(
            latency,
            past,
            "refusal_p99_ms",
            "x",
            colour=colour,
            label=f"refusal p99 past capacity, {mode}",
            markersize=9,
        )
    throughput.set(title="orders accepted", xlabel="offered orders/s", ylabel="accepted orders/s")
    latency.set(title="latency, 99th percentile", xlabel="offered orders/s", ylabel="ms", yscale="log")
    throughput.legend()
    latency.legend(fontsize="small")

    _cpu_bars(cpu, runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _cpu_bars(axes: Any, runs: dict[str, dict[str, Any]]) -> None:
    """Stacked bars of CPU per order by process, each step of each mode side by side."""
    bars = [(mode, step) for mode, run in runs.items() for step in run["steps"]]
    groups = list(dict.fromkeys(group for _, step in bars for group in step["cpu_ms_per_order_by_group"]))
    colours = plt.get_cmap("tab10")
    labels = [f"{step['target_per_second']:.0f}/s\n{mode}" for mode, step in bars]
    bottoms = [0.0] * len(bars)
    for number, group in enumerate(groups):
        heights = [step["cpu_ms_per_order_by_group"].get(group, 0.0) for _, step in bars]
        axes.bar(labels, heights, bottom=bottoms, color=colours(number % 10), label=group)
        bottoms = [bottom + height for bottom, height in zip(bottoms, heights, strict=True)]
    axes.set(title="CPU per accepted order, by process", ylabel="CPU ms per order")
    axes.tick_params(axis="x", labelsize="small")
    axes.legend(fontsize="small")


if __name__ == "__main__":
    import json
    import sys

    source = Path(sys.argv[1])
    print(draw(json.loads(source.read_text()), source.with_suffix(".png")))
