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


def _offered(steps: list[dict[str, Any]]) -> list[float]:
    return [step["target_per_second"] for step in steps]


def draw(results: dict[str, Any], path: Path) -> Path:
    runs: dict[str, dict[str, Any]] = results["pipeline"]
    figure, (throughput, latency, cpu) = plt.subplots(1, 3, figsize=(18, 5.5), constrained_layout=True)
    figure.suptitle(f"make bench, {results['when']} ({results['machine']['cpus']} CPUs)")

    highest = max(step["target_per_second"] for run in runs.values() for step in [*run["steps"], *run["overload"]])
    throughput.plot([0, highest], [0, highest], color="lightgrey", linestyle="--", label="accepted = offered")
    for mode, run in runs.items():
        label, colour = MODES[mode]
        steps, past = run["steps"], run["overload"]
        throughput.plot(
            _offered(steps), [step["accepted_per_second"] for step in steps], "o-", color=colour, label=label
        )
        throughput.plot(
            _offered(past),
            [step["accepted_per_second"] for step in past],
            "^",
            color=colour,
            markersize=9,
            label=f"past capacity (2x, 4x), {mode}",
        )
        latency.plot(
            _offered(steps), [step["api_p99_ms"] for step in steps], "o-", color=colour, label=f"API p99, {mode}"
        )
        latency.plot(
            _offered(steps),
            [step["notified_p99_ms"] for step in steps],
            "s--",
            color=colour,
            label=f"notified p99, {mode}",
        )
        latency.plot(
            _offered(past),
            [step["refusal_p99_ms"] for step in past],
            "x",
            color=colour,
            markersize=9,
            label=f"refusal p99 past capacity, {mode}",
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
