"""Output: the run as a text or Markdown table with its notes, and as a plot."""
from __future__ import annotations

import math
from typing import Sequence

from .peers import PEERS
from .run import BASELINE
from .timing import NOISY_SPREAD


def fmt_seconds(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _size_label(row: dict) -> str:
    shape = row["shape"]
    if len(shape) == 1:
        n = shape[0]
        exp = int(math.log10(n)) if n > 0 else 0
        return f"{n / 10 ** exp:g}e{exp}" if n >= 1000 and n == round(n / 10 ** exp, 3) * 10 ** exp else str(n)
    return "x".join(map(str, shape))


def format_table(report: dict, markdown: bool = False) -> str:
    """The results as a text (or Markdown) table: median and spread per engine, the fastest peer and
    the ratio fastest peer / lossengine."""
    engines = ["lossengine"] + [p for p in report["peers"] if p not in report["unavailable_peers"]]
    baseline = report.get("baseline")
    if baseline:
        engines.append(BASELINE)
    header = ["case", "size"] + engines + ["fastest peer", "ratio"] + ([f"vs {baseline}"] if baseline else [])
    roofline = "roofline" in report
    if roofline:
        header += ["bytes/call", "GB/s", "a+b->c GB/s", "of a+b->c"]
    lines = []
    for row in report["cases"]:
        cells = [row["label"], _size_label(row)]
        for e in engines:
            r = row["results"].get(e)
            cells.append("-" if r is None else f"{fmt_seconds(r['median'])} ({100 * r['spread']:.0f}%)"
                         + ("!" if e in row.get("noisy", ()) else ""))
        if "error" in row:
            cells[2] = "error"
        cells += [row.get("fastest_peer", "-"), f"{row['ratio']:.2f}x" if row.get("ratio") else "-"]
        if baseline:
            cells.append(f"{row['baseline_ratio']:.2f}x" if row.get("baseline_ratio") else "-")
        if roofline:
            cells += _roofline_cells(row.get("roofline"))
        lines.append(cells)
    return table(header, lines, markdown)


def _roofline_cells(figures: dict | None) -> list[str]:
    if figures is None:
        return ["-"] * 4
    return [fmt_bytes(figures["total"]), f"{figures['bandwidth'] / 1e9:.1f}",
            f"{figures['reference']['bandwidth'] / 1e9:.1f}", f"{figures['fraction']:.2f}"]


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    """Rows of cells under ``header``: Markdown, or plain text in aligned columns."""
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(out + ["| " + " | ".join(c) + " |" for c in rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def format_report(report: dict, notes: Sequence[str] = (), markdown: bool = False) -> str:
    """The table with its legend, the inputs' shapes, and every note, skip and error."""
    threads = ", ".join(f"{k} {v}" for k, v in report["threads"].items())
    out = [f"lossengine bench: {report['what']}, {report['dtype']}",
           f"threads: {threads}",
           "each cell: median of interleaved calls (interquartile range as % of the median)",
           "ratio = fastest peer's median / lossengine's (> 1: lossengine is faster)"]
    if report.get("baseline"):
        out.append(f"vs {report['baseline']} = its median (lossengine, same size, interleaved) / the case's "
                   f"(> 1: the case is faster)")
    if "roofline" in report:
        out.append(f"roofline: bytes/call = every input read + every output written, once; GB/s = bytes / "
                   f"lossengine's median; a+b->c GB/s = {report['roofline']['reference']}, over the "
                   "same bytes in the same run; of a+b->c = the ratio of the two (near 1: bandwidth-bound)")
    out += ["", format_table(report, markdown)]
    out += ["", "inputs (N, C: as in the size column):"] + [f"  {label}: {text}" for label, text in _input_shapes(report)]
    if report["geomean_ratio"]:
        out += ["", f"geometric mean of the ratios: {report['geomean_ratio']:.2f}x"]
    noisy = [(row["label"], _size_label(row), e) for row in report["cases"] for e in row.get("noisy", ())]
    if noisy:
        out += ["", f"warning: {len(noisy)} figure(s) marked ! have an interquartile range above "
                    f"{100 * NOISY_SPREAD:.0f}% of the median: too wide to trust (a busy machine?); "
                    "rerun, or raise --repeat"]
    skipped = _skipped_summary(report)
    if skipped or notes:
        out += ["", "skipped:"] + [f"  {line}" for line in list(notes) + skipped]
    errors = [f"  {row['label']} {_size_label(row)}: {row['error']}" for row in report["cases"] if "error" in row]
    if errors:
        out += ["", "errors:"] + errors
    return "\n".join(out)


def _input_shapes(report: dict) -> list[tuple[str, str]]:
    """Per loss configuration, its arguments' shapes and dtypes; an axis whose length follows the size
    is named (N for axis 0, C for axis 1, ...)."""
    rows: dict[str, list[dict]] = {}
    for row in report["cases"]:
        rows.setdefault(row["label"], []).append(row)
    out = []
    for label, group in rows.items():
        parts = []
        for k, arg in enumerate(group[0]["inputs"]):
            dims = [d if len(group) == 1 or all(r["inputs"][k]["shape"][a] == d for r in group) else "NCDEF"[a]
                    for a, d in enumerate(arg["shape"])]
            parts.append(f"{arg['name']} ({', '.join(map(str, dims))}{',' if len(dims) == 1 else ''}) {arg['dtype']}")
        out.append((label, ", ".join(parts)))
    return out


def _skipped_summary(report: dict) -> list[str]:
    """One line per reason, naming the peers and the cases it applies to."""
    by_reason: dict[tuple, list[str]] = {}
    for row in report["cases"]:
        for peer, why in row["skipped"].items():
            by_reason.setdefault((peer, why), []).append(f"{row['label']} {_size_label(row)}")
    lines: dict[str, list[str]] = {}     # line without its peers -> peers
    for (peer, why), where in by_reason.items():
        if peer in report["unavailable_peers"]:
            lines.setdefault(why, []).append(peer)
            continue
        labels = list(dict.fromkeys(w.rsplit(" ", 1)[0] for w in where))
        scope = ", ".join(where) if len(where) <= 3 else ", ".join(labels)
        lines.setdefault(f"{why} [{scope}]", []).append(peer)
    return [f"{', '.join(peers)}: {line}" for line, peers in lines.items()]


def write_plot(report: dict, path: str) -> None:
    """Median time against input size, one panel per loss configuration, one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[dict]] = {}
    for row in report["cases"]:
        if row["results"]:
            groups.setdefault(row["label"], []).append(row)
    n = max(1, len(groups))
    cols = min(3, n)
    rows_ = -(-n // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4.2 * cols, 3.2 * rows_), squeeze=False)
    engines = ["lossengine"] + list(PEERS)
    colors = dict(zip(engines, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, (label, rows) in zip(axes.flat, groups.items()):
        for engine in engines:
            pts = sorted((r["elements"], r["results"][engine]["median"]) for r in rows if engine in r["results"])
            if pts:
                ax.plot(*zip(*pts), marker="o", label=engine, color=colors[engine],
                        linewidth=2.5 if engine == "lossengine" else 1.2)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("input elements", fontsize=8)
        ax.set_ylabel("seconds per call", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.suptitle(f"forward_backward, {report['dtype']}, threads: lossengine {report['threads']['lossengine']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
