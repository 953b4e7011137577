"""Per-action result tables (rich) from the flat metric dictionaries."""

from __future__ import annotations

from rich.table import Table

METRIC_ORDER = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "pck", "auc")
METRIC_TITLES = {
    "mpjpe": "MPJPE",
    "p_mpjpe": "P-MPJPE",
    "n_mpjpe": "N-MPJPE",
    "mpjve": "MPJVE",
    "pck": "PCK",
    "auc": "AUC",
}


def split_results(res: dict[str, float]) -> dict[str, dict[str, float]]:
    """``{"mpjpe/action/Walk": v, "mpjpe/avg": v}`` -> ``{"mpjpe": {"Walk": v, "Avg": v}}``."""
    out: dict[str, dict[str, float]] = {}
    for key, value in res.items():
        metric, _, rest = key.partition("/")
        col = (
            rest.split("/", 1)[1]
            if rest.startswith("action/")
            else {"avg": "Avg", "frames": "Frames"}[rest]
        )
        out.setdefault(metric, {})[col] = float(value)
    return out


def format_results_table(by_metric: dict[str, dict[str, float]], actions: list[str]) -> Table:
    """Rows: actions, then the mean over actions (Avg) and over frames; columns: metrics. A
    metric that is not defined for a row (absent, or NaN such as MPJVE without consecutive test
    frames) shows as ``-``."""
    metrics = [m for m in METRIC_ORDER if m in by_metric] + sorted(
        set(by_metric) - set(METRIC_ORDER)
    )
    table = Table(title="Test results (MPJPE-type in mm, PCK/AUC in %)")
    table.add_column("action", style="bold")
    for m in metrics:
        table.add_column(METRIC_TITLES.get(m, m), justify="right")
    rows = [a for a in actions if any(a in by_metric[m] for m in metrics)]
    for i, row in enumerate(rows + ["Avg", "Frames"]):
        values = [by_metric[m].get(row) for m in metrics]  # undefined (NaN) shows as "-"
        cells = ["-" if v is None or v != v else f"{v:.1f}" for v in values]
        table.add_row(row, *cells, end_section=i == len(rows) - 1)
    return table
