"""Paper-table specifications: ``experiments/<paper>/<table>.yaml``.

A spec is the whole recipe of one table of one paper::

    paper: attn-2d3d-system            # the paper (file name in the papers folder)
    title: "Table IX: number of frames"
    caption: "..."                     # the paper's caption, verbatim
    base: [model=poseformer]           # overrides of every row, at every scale
    labels: [Method, Frames]           # leading columns typed in each row
    columns:                           # numbers: a key of metrics.json ...
      - {key: test/mpjpe, name: MPJPE (mm), fmt: .1f}
      - {key: params_m, name: "#Param (M)", fmt: .2f, at: full}   # ... or counted at a scale
    rows:
      - name: poseformer_f81           # folder name of the row's runs
        labels: {Method: PoseFormer, Frames: 81}
        overrides: [frames=81]
        paper: {test/mpjpe: 44.3, params_m: 9.59}   # the paper's printed numbers (null: none)
        scales: {smoke: [...]}         # optional, extra overrides of this row at a scale
      - name: graformer                # a method liftpose does not have: the paper's numbers
        labels: {Method: GraFormer}    # are rendered, nothing runs
        reference: true
        paper: {test/mpjpe: 58.7}
    scales:                            # merged over experiments/_defaults.yaml
      cpu: {overrides: [experiment=main_cpu], seeds: [0, 1]}
      # drop: [data.train_stride]      # shared scale overrides that do not apply here

A job's overrides are, in order (later ones win): the scale's defaults and the spec's own
overrides for that scale, ``base``, whatever the caller adds (``liftpose-tables --
data.root=/data/h36m``), the row's overrides, the row's overrides at that scale, and the seed.
The row comes last so that the variable a table studies is never overridden by accident.

A column with ``at: <scale>`` is not read from ``metrics.json``: it is computed from the row's
model built at that scale (no training), so a parameter count at the paper's own dimensions
stands beside smoke-scale errors. ``params``, ``params_m`` and ``gflops`` (one forward pass of
one window, in eval mode) can be computed that way; a table whose columns are all computed
runs no training at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from liftpose.errors import ConfigError, DataError

SCALES = ("smoke", "cpu", "full")
ROW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: metrics.json keys a column may name: ``test/<metric>``, ``test/<metric>/frames``,
#: ``test/<metric>/action/<name>`` for these metrics, and the top-level numbers below.
TEST_METRICS = {"mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "pck", "auc"}
#: the 2-D detector's COCO keypoint metrics (``test/AP`` ..., percent)
COCO_METRICS = {"AP", "AP50", "AP75", "APM", "APL", "AR"}
#: image lifters' share of keypoint -> image attention on the background (percent): outside the
#: discs around the keypoints, and outside the body mask (``test/bg_attention`` ...)
ATTENTION_METRICS = {"bg_attention", "bg_attention_mask"}
TOP_LEVEL_KEYS = {"params", "params_m", "seconds", "gflops", "fps"}
#: time to convergence, from ``metrics.json``'s ``val_history`` (see :func:`convergence`)
CONVERGENCE_KEYS = {"convergence/epochs", "convergence/minutes"}
#: keys a column may compute from the row's model (``at: <scale>``): parameter counts, the
#: floating-point operations of one forward pass of one window (``torch.utils.flop_counter``),
#: and ``fps``: predicted frames per second of eval-mode inference on this machine (batch 64,
#: median of 3 timed runs, CUDA when available)
COMPUTABLE_KEYS = {"params", "params_m", "gflops", "fps"}


def is_metric_key(key: str) -> bool:
    """Whether ``key`` names a number that ``metrics.json`` holds (see :data:`TEST_METRICS`)."""
    if key in TOP_LEVEL_KEYS or key in CONVERGENCE_KEYS:
        return True
    parts = key.split("/")
    if len(parts) == 2 and parts[0] == "test" and parts[1] in COCO_METRICS | ATTENTION_METRICS:
        return True
    if len(parts) < 2 or parts[0] != "test" or parts[1] not in TEST_METRICS:
        return False
    rest = parts[2:]
    return rest in ([], ["frames"]) or (len(rest) >= 2 and rest[0] == "action")


@dataclass(frozen=True)
class Column:
    key: str
    name: str
    fmt: str = ".1f"
    at: str | None = None  # compute at this scale instead of reading metrics.json


@dataclass(frozen=True)
class Row:
    name: str
    overrides: list[str]
    paper: dict[str, float | None]
    labels: dict[str, str] = field(default_factory=dict)
    scales: dict[str, list[str]] = field(default_factory=dict)
    #: the paper's numbers only (a method liftpose does not have): rendered, never run
    reference: bool = False


@dataclass(frozen=True)
class Scale:
    overrides: list[str]
    seeds: list[int]
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    path: Path
    paper: str
    group: str  # the folder under experiments/ (one per paper)
    name: str  # the file stem
    title: str
    caption: str
    base: list[str]
    labels: list[str]
    columns: list[Column]
    rows: list[Row]
    scales: dict[str, Scale]
    notes: str = ""
    convergence_tolerance: float = 0.01

    @property
    def needs_runs(self) -> bool:
        """Whether any column is read from training runs (not all computed from the model)."""
        return any(c.at is None for c in self.columns)

    @property
    def runnable_rows(self) -> list[Row]:
        """The rows that run (all but the paper-only ``reference`` rows)."""
        return [r for r in self.rows if not r.reference]

    @property
    def id(self) -> str:
        """``<paper folder>/<table>``, e.g. ``attn_2d3d/table09_frames``."""
        return f"{self.group}/{self.name}"

    def job_overrides(
        self, row: Row, scale: str, seed: int, extra: list[str] | None = None
    ) -> list[str]:
        """The Hydra overrides of one run of ``row`` (see the module docstring for the order)."""
        sc = self.scales[scale]
        return [
            *sc.overrides,
            *self.base,
            *(extra or []),
            *row.overrides,
            *row.scales.get(scale, []),
            f"seed={seed}",
        ]


def _strings(value: Any, path: Path, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise DataError(path, where, "expected a list of Hydra overrides (strings)")
    return [str(v) for v in value]


def _mapping(value: Any, path: Path, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DataError(path, where, f"expected a mapping, got {type(value).__name__}")
    return value


def _scales(raw: dict, path: Path, where: str) -> dict[str, dict]:
    raw = _mapping(raw, path, where)
    for name in raw:
        if name not in SCALES:
            raise DataError(path, f"{where}.{name}", f"unknown scale (one of {', '.join(SCALES)})")
    return raw


def load_defaults(root: Path) -> dict[str, dict]:
    """The scale presets shared by every spec (``experiments/_defaults.yaml``)."""
    path = root / "_defaults.yaml"
    if not path.is_file():
        return {}
    doc = _mapping(yaml.safe_load(path.read_text()), path, "<top>")
    return _scales(doc.get("scales"), path, "scales")


def load_spec(path: str | Path, root: str | Path | None = None) -> TableSpec:
    """Read and check one spec; errors name the file and the field."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent.parent
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DataError(path, "<file>", f"cannot read YAML: {e}") from e
    doc = _mapping(doc, path, "<top>")
    for key in ("paper", "title", "columns", "rows"):
        if key not in doc:
            raise DataError(path, key, "missing")
    known = {"paper", "title", "caption", "base", "labels", "columns", "rows", "scales", "notes"}
    known.add("convergence_tolerance")
    unknown = set(doc) - known
    if unknown:
        raise DataError(
            path, sorted(unknown)[0], f"unknown key (known: {', '.join(sorted(known))})"
        )

    columns = []
    for i, c in enumerate(doc["columns"] or []):
        c = _mapping(c, path, f"columns[{i}]")
        if "key" not in c:
            raise DataError(path, f"columns[{i}].key", "missing")
        col = Column(
            key=str(c["key"]),
            name=str(c.get("name", c["key"])),
            fmt=str(c.get("fmt", ".1f")),
            at=c.get("at"),
        )
        if not is_metric_key(col.key):
            raise DataError(
                path,
                f"columns[{i}].key",
                f"{col.key!r} is not a metrics.json key (test/<{'|'.join(sorted(TEST_METRICS))}>"
                f"[/frames|/action/<name>], "
                f"test/<{'|'.join(sorted(COCO_METRICS | ATTENTION_METRICS))}> or "
                f"{', '.join(sorted(TOP_LEVEL_KEYS))})",
            )
        if col.at is not None and (col.at not in SCALES or col.key not in COMPUTABLE_KEYS):
            raise DataError(
                path, f"columns[{i}].at", f"only {sorted(COMPUTABLE_KEYS)} at one of {SCALES}"
            )
        try:
            format(1.0, col.fmt)
        except ValueError as e:
            raise DataError(path, f"columns[{i}].fmt", str(e)) from e
        columns.append(col)
    if not columns:
        raise DataError(path, "columns", "no columns")
    keys = {c.key for c in columns}
    labels = _strings(doc.get("labels"), path, "labels")

    rows, seen = [], set()
    for i, r in enumerate(doc["rows"] or []):
        r = _mapping(r, path, f"rows[{i}]")
        name = str(r.get("name", ""))
        if not ROW_NAME.match(name) or name in seen:
            raise DataError(path, f"rows[{i}].name", f"{name!r}: missing, repeated or not a name")
        seen.add(name)
        paper = _mapping(r.get("paper"), path, f"rows[{i}].paper")
        for k, v in paper.items():
            if k not in keys:
                raise DataError(path, f"rows[{i}].paper.{k}", "not one of the columns")
            if v is not None and not isinstance(v, (int, float)):
                raise DataError(path, f"rows[{i}].paper.{k}", f"expected a number, got {v!r}")
        row_labels = {str(k): str(v) for k, v in _mapping(r.get("labels"), path, "labels").items()}
        for k in row_labels:
            if k not in labels:
                raise DataError(path, f"rows[{i}].labels.{k}", "not one of the spec's labels")
        row_scales = {
            k: _strings(v, path, f"rows[{i}].scales.{k}")
            for k, v in _scales(r.get("scales"), path, f"rows[{i}].scales").items()
        }
        reference = r.get("reference", False)
        if not isinstance(reference, bool):
            raise DataError(
                path, f"rows[{i}].reference", f"expected true or false, got {reference!r}"
            )
        unknown_keys = set(r) - {"name", "labels", "overrides", "paper", "scales", "reference"}
        if unknown_keys:
            raise DataError(path, f"rows[{i}].{sorted(unknown_keys)[0]}", "unknown key")
        rows.append(
            Row(
                name=name,
                overrides=_strings(r.get("overrides"), path, f"rows[{i}].overrides"),
                paper={k: (None if v is None else float(v)) for k, v in paper.items()},
                labels=row_labels,
                scales=row_scales,
                reference=reference,
            )
        )
    if not rows:
        raise DataError(path, "rows", "no rows")

    defaults = load_defaults(root)
    own = _scales(doc.get("scales"), path, "scales")
    scales = {}
    for name in SCALES:
        d = _mapping(defaults.get(name), path, f"scales.{name}")
        s = _mapping(own.get(name), path, f"scales.{name}")
        seeds = s.get("seeds", d.get("seeds", [0]))
        unknown = set(s) - {"overrides", "seeds", "description", "drop"}
        if unknown:
            raise DataError(path, f"scales.{name}", f"unknown keys {sorted(unknown)}")
        if not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) for x in seeds):
            raise DataError(path, f"scales.{name}.seeds", "expected a non-empty list of integers")
        # `drop`: keys of the shared scale overrides that do not apply to this table (an image
        # table has no data.train_stride)
        drop = set(_strings(s.get("drop"), path, f"scales.{name}.drop"))
        shared = _strings(d.get("overrides"), path, f"scales.{name}.overrides")
        shared = [o for o in shared if o.split("=", 1)[0].lstrip("+~") not in drop]
        scales[name] = Scale(
            overrides=shared + _strings(s.get("overrides"), path, f"scales.{name}.overrides"),
            seeds=list(seeds),
            description=str(s.get("description", d.get("description", ""))),
        )
    return TableSpec(
        path=path,
        paper=str(doc["paper"]),
        group=path.parent.name,
        name=path.stem,
        title=str(doc["title"]),
        caption=" ".join(str(doc.get("caption", "")).split()),
        base=_strings(doc.get("base"), path, "base"),
        labels=labels,
        columns=columns,
        rows=rows,
        scales=scales,
        notes=str(doc.get("notes", "")).strip(),
        convergence_tolerance=float(doc.get("convergence_tolerance", 0.01)),
    )


def convergence(history: list[list[float]], tolerance: float) -> tuple[int, float] | None:
    """``(epochs, minutes)`` of training until convergence, or None without validations.

    The rule: a run has converged at the first validation whose ``val/mpjpe`` is within
    ``tolerance`` (relative) of the best ``val/mpjpe`` of the whole run; the time is the
    training time (validation included) up to the end of that epoch. ``history`` holds
    ``[epoch, seconds, val/mpjpe]`` per validation.
    """
    if not history:
        return None
    best = min(v for _, _, v in history)
    for epoch, seconds, value in history:
        if value <= best * (1.0 + tolerance):
            return int(epoch), seconds / 60.0
    return None  # unreachable: the best value itself qualifies


def find_specs(root: str | Path, pattern: str = "*") -> list[TableSpec]:
    """Every spec under ``root`` whose id (``<paper>/<table>``) matches the glob ``pattern``."""
    import fnmatch

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"no experiments folder at {root}")
    paths = sorted(p for p in root.glob("*/*.yaml") if not p.name.startswith("_"))
    chosen = [
        p
        for p in paths
        if fnmatch.fnmatch(f"{p.parent.name}/{p.stem}", pattern)
        or fnmatch.fnmatch(p.parent.name, pattern)
    ]
    return [load_spec(p, root) for p in chosen]
