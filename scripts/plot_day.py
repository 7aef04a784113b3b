#!/usr/bin/env python3
"""Plots a `fleetmesh simulate --json` report as an SVG: nodes present and running over the
simulated day (left axis) and the master's messages per second (right axis).

    python3 scripts/plot_day.py report.json plot.svg [title]

Standard library only, so it runs on a fresh machine.
"""

import json
import sys

W, H = 900, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 70, 40, 50


def polyline(points, colour, dash=""):
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2"{extra} points="{pts}"/>'


def nice_max(v):
    if v <= 0:
        return 1
    step = 10 ** (len(str(int(v))) - 1)
    return ((int(v) // step) + 1) * step


def plot(report, title):
    series = report["series"]
    if not series:
        raise SystemExit("the report has no time series")
    t_max = max(report["simulated_seconds"], series[-1]["t"], 1)
    n_max = nice_max(max(max(s["running"], s["present"]) for s in series))
    m_max = nice_max(max(s["master_msgs_per_sec"] for s in series))
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t):
        return LEFT + pw * t / t_max

    def y_nodes(n):
        return TOP + ph * (1 - n / n_max)

    def y_master(m):
        return TOP + ph * (1 - m / m_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15">{title}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    hours = t_max / 3600
    tick = 1 if hours <= 6 else 2 if hours <= 12 else 3
    h = 0
    while h <= hours + 1e-9:
        px = x(h * 3600)
        out.append(f'<line x1="{px}" y1="{TOP + ph}" x2="{px}" y2="{TOP + ph + 5}" stroke="#999"/>')
        out.append(f'<text x="{px}" y="{TOP + ph + 18}" text-anchor="middle">{h:02d}:00</text>')
        h += tick
    for i in range(6):
        n, m = n_max * i / 5, m_max * i / 5
        py = y_nodes(n)
        out.append(f'<line x1="{LEFT}" y1="{py}" x2="{LEFT + pw}" y2="{py}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4}" text-anchor="end">{int(n)}</text>')
        out.append(f'<text x="{LEFT + pw + 6}" y="{py + 4}">{m:g}</text>')
    out.append(f'<text x="16" y="{TOP + ph / 2}" transform="rotate(-90 16 {TOP + ph / 2})" '
               f'text-anchor="middle">nodes</text>')
    out.append(f'<text x="{W - 14}" y="{TOP + ph / 2}" transform="rotate(90 {W - 14} '
               f'{TOP + ph / 2})" text-anchor="middle">master messages / s</text>')
    out.append(polyline([(x(s["t"]), y_nodes(s["running"])) for s in series], "#999", "6,4"))
    out.append(polyline([(x(s["t"]), y_nodes(s["present"])) for s in series], "#1f77b4"))
    out.append(polyline([(x(s["t"]), y_master(s["master_msgs_per_sec"])) for s in series],
                        "#d62728"))
    legend = [("#999", "running"), ("#1f77b4", "present at the master"),
              ("#d62728", "master messages / s (right axis)")]
    for i, (colour, label) in enumerate(legend):
        ly = TOP + 14 + 16 * i
        out.append(f'<line x1="{LEFT + 10}" y1="{ly}" x2="{LEFT + 34}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{LEFT + 40}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        report = json.load(f)
    title = sys.argv[3] if len(sys.argv) > 3 else (
        f'{report["nodes"]} nodes, {report["subnets"]} subnets, seed {report["seed"]}')
    with open(sys.argv[2], "w") as f:
        f.write(plot(report, title))


if __name__ == "__main__":
    main()
