"""Render a table spec and its runs' ``metrics.json`` as markdown and CSV, paper beside ours."""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field

from liftpose.tables.spec import Column, Row, TableSpec


@dataclass
class RowResult:
    """What the runs of one row gave: per column the values over seeds."""

    row: Row
    values: dict[str, list[float]] = field(default_factory=dict)
    seeds_done: list[int] = field(default_factory=list)
    seeds_planned: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # log paths of failed runs
    commits: set[str] = field(default_factory=set)

    @property
    def status(self) -> str:
        if self.row.reference:
            return "paper only"
        if self.failed:
            return "failed"
        if not self.seeds_done:
            return "missing"
        if len(self.seeds_done) < len(self.seeds_planned):
            return "partial"
        return "ok"


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else None)


def cell(col: Column, res: RowResult) -> dict[str, float | str | None]:
    """Paper value, our mean and std, and their difference for one column of one row."""
    paper = res.row.paper.get(col.key)
    vals = [v for v in res.values.get(col.key, []) if not math.isnan(v)]
    if not vals:
        return {"paper": paper, "mean": None, "std": None, "diff": None}
    m, s = mean_std(vals)
    return {"paper": paper, "mean": m, "std": s, "diff": None if paper is None else m - paper}


def _fmt(v: float | None, fmt: str, signed: bool = False) -> str:
    if v is None:
        return "–"
    return format(v, ("+" if signed else "") + fmt)


def status_text(res: RowResult) -> str:
    if res.status == "failed":
        return "failed: " + ", ".join(f"`{p}`" for p in res.failed)
    if res.status == "partial":
        return f"partial ({len(res.seeds_done)}/{len(res.seeds_planned)} seeds)"
    return res.status


def render_markdown(spec: TableSpec, results: list[RowResult], scale: str) -> str:
    """The table as markdown: per column the paper's number, ours (mean ± std), the difference."""
    sc = spec.scales[scale]
    lines = [f"# {spec.paper} — {spec.title}", ""]
    if spec.caption:
        lines += [f"> {spec.caption}", ""]
    seeds = ", ".join(str(s) for s in sc.seeds)
    lines += [
        f"Scale **{scale}**"
        + (f" ({sc.description})" if sc.description else "")
        + f"; seeds {seeds}; spec `experiments/{spec.id}.yaml`.",
        "",
    ]
    head = list(spec.labels)
    for c in spec.columns:
        suffix = f" @{c.at}" if c.at else ""
        head += [f"{c.name} paper", f"{c.name} ours{suffix}", f"{c.name} Δ"]
    head += ["scale", "status"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append(
        "|"
        + "|".join(["---"] * len(spec.labels) + ["---:"] * (3 * len(spec.columns)))
        + "|---|---|"
    )
    for res in results:
        cells = [res.row.labels.get(lab, "") for lab in spec.labels]
        for c in spec.columns:
            v = cell(c, res)
            ours = _fmt(v["mean"], c.fmt)
            if v["std"] is not None:
                ours += f" ± {_fmt(v['std'], c.fmt)}"
            cells += [_fmt(v["paper"], c.fmt), ours, _fmt(v["diff"], c.fmt, signed=True)]
        cells += [scale, status_text(res)]
        lines.append("| " + " | ".join(cells) + " |")
    if spec.notes:
        lines += ["", spec.notes]
    commits = sorted(set().union(*(r.commits for r in results)))
    if commits:
        lines += ["", "Runs at commit " + ", ".join(f"`{c}`" for c in commits) + "."]
    return "\n".join(lines) + "\n"


def records(spec: TableSpec, results: list[RowResult], scale: str) -> tuple[list[str], list[list]]:
    """Header and typed rows: labels, then per column paper, mean, std, diff; then the runs."""
    head = ["row", *spec.labels]
    for c in spec.columns:
        head += [f"{c.key}:paper", f"{c.key}:mean", f"{c.key}:std", f"{c.key}:diff"]
    head += ["seeds", "scale", "status", "logs"]
    rows = []
    for res in results:
        line: list = [res.row.name, *(res.row.labels.get(lab, "") for lab in spec.labels)]
        for c in spec.columns:
            v = cell(c, res)
            line += [v[k] for k in ("paper", "mean", "std", "diff")]
        seeds = " ".join(str(s) for s in res.seeds_done)
        rows.append([*line, seeds, scale, res.status, " ".join(res.failed)])
    return head, rows


def render_csv(spec: TableSpec, results: list[RowResult], scale: str) -> str:
    """:func:`records` as CSV (empty cells for missing numbers)."""
    head, rows = records(spec, results, scale)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for row in rows:
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def render_index(entries: list[tuple[TableSpec, str, list[str]]]) -> str:
    """``results/README.md``: each rendered table with its scale and its rows' status."""
    lines = [
        "# Reproduced tables",
        "",
        "Paper numbers beside ours; regenerate with `make reproduce-tables SCALE=<scale>`.",
        "",
        "| paper | table | scale | rows ok | failed |",
        "|---|---|---|---:|---:|",
    ]
    for spec, scale, status in sorted(entries, key=lambda e: e[0].id):
        link = f"[{spec.title}]({spec.group}/{spec.name}.md)"
        ok, bad = status.count("ok"), status.count("failed")
        lines.append(f"| {spec.paper} | {link} | {scale} | {ok}/{len(status)} | {bad} |")
    return "\n".join(lines) + "\n"
