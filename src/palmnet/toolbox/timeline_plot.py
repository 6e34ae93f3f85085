"""The timeline of a `converge` run as a PNG (matplotlib, Agg: no display needed).

Top: every probe against its send time, answered ones at their round-trip
time, lost ones as red ticks along the bottom, the outage shaded. Bottom:
one row per router with a tick per route change (tall blue when the next
hops changed, short grey when the route was only rewritten). The failure
is the red dashed line at 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def plot_timeline(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    samples = result.get("samples", [])
    answered = [(t, rtt) for t, rtt in samples if rtt is not None]
    lost = [t for t, rtt in samples if rtt is None]
    routers = list(result["route_changes"]["per_router"])
    events = result["route_changes"]["events"]

    height = 2.2 + 0.32 * max(len(routers), 1)
    fig, (top, bottom) = plt.subplots(
        2,
        1,
        sharex=True,
        figsize=(10, 2.8 + height),
        gridspec_kw={"height_ratios": [2.8, height]},
    )
    if answered:
        top.scatter(
            [t for t, _ in answered],
            [max(r, 0.001) for _, r in answered],
            s=4,
            color="tab:green",
            label=f"answered ({len(answered)})",
        )
        top.set_yscale("log")
        # Round trips on veths fall inside one decade (0.1-0.5 ms): the default log
        # axis then has no major tick and no label. Ticks at 1, 2 and 5 of each
        # decade, the axis spanning whole decades, labelled in ms.
        rtts = [max(r, 0.001) for _, r in answered]
        low = 10 ** math.floor(math.log10(min(rtts)))
        high = 10 ** math.ceil(math.log10(max(rtts)))
        top.set_ylim(low, high if high > low else low * 10)
        top.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        top.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
        top.yaxis.set_minor_formatter(ticker.NullFormatter())
    if lost:
        top.plot(
            lost,
            [0.0] * len(lost),
            "|",
            color="tab:red",
            markersize=14,
            transform=top.get_xaxis_transform(),
            label=f"lost ({len(lost)})",
        )
    for start, end in result.get("loss_periods", []):
        stop = end if end is not None else (samples[-1][0] if samples else start)
        top.axvspan(start, stop, color="tab:red", alpha=0.12, linewidth=0)
    top.set_ylabel("round trip (ms)")
    top.legend(loc="upper right", fontsize=8)

    for row, router in enumerate(routers):
        mine = [e for e in events if e["router"] == router]
        moved = [e["t"] for e in mine if e.get("moved", True)]
        rewritten = [e["t"] for e in mine if not e.get("moved", True)]
        if moved:
            bottom.eventplot(
                moved, lineoffsets=row, linelengths=0.75, colors="tab:blue", linewidths=1.4
            )
        if rewritten:
            bottom.eventplot(
                rewritten, lineoffsets=row, linelengths=0.35, colors="tab:grey", linewidths=1
            )
    bottom.set_yticks(range(len(routers)), routers)
    bottom.set_ylim(-0.7, max(len(routers), 1) - 0.3)
    bottom.invert_yaxis()
    bottom.set_ylabel("route changes")
    bottom.set_title(
        "tall blue: next hops changed; short grey: route rewritten, same next hops",
        fontsize=8,
        loc="left",
    )
    bottom.set_xlabel("seconds after the failure")

    for ax in (top, bottom):
        ax.axvline(0.0, color="tab:red", linestyle="--", linewidth=1)
        ax.grid(axis="x", alpha=0.3)
    loss = result.get("loss", 100)
    how = f"silent, {loss}% loss" if result["mode"] == "silent" and loss < 100 else result["mode"]
    outage = result.get("outage")
    outage_text = "not recovered" if outage is None else f"outage {outage:.3f} s"
    top.set_title(
        f"{result['from']} → {result['to']}, link {result['link']} failed ({how}): "
        f"{outage_text}, {result['probes']['lost_after_failure']} probes lost, "
        f"{result['route_changes']['count']} route changes",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
