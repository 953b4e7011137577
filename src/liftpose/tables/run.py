"""``liftpose-tables``: run the rows of paper-table specs as Hydra multiruns, then render them.

    liftpose-tables --scale smoke                       # every spec in experiments/
    liftpose-tables --scale cpu --tables 'attn_2d3d/*'  # one paper
    liftpose-tables --scale full --launcher submitit_slurm -- data.root=/data/h36m
    liftpose-tables --render-only                       # tables from the runs already there

Each table is one ``liftpose-train -m hydra/sweeper=rows`` process whose jobs are the table's
rows times its seeds; the launcher (``--launcher``, a ``conf/launcher`` option) decides where
they run. A job writes into ``results/<paper>/<table>/<row>/seed<k>-<hash>/``, where ``hash``
is the hash of its resolved config (paths, loggers and bookkeeping left out), so a run whose
``metrics.json`` is there is never repeated, an interrupted reproduction resumes (from the
job's ``checkpoints/last.ckpt`` when there is one) and a changed config runs afresh beside the
old one. A failed job leaves ``error.log`` in its folder; its row is rendered as failed with
that path, and every other row and table is still rendered. An override value
``ckpt://<paper>/<table>/<row>`` names the checkpoint of another table's row at the same scale
(run that table first).
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf, open_dict

from liftpose.errors import ConfigError, DataError
from liftpose.tables.render import (
    RowResult,
    records,
    render_csv,
    render_index,
    render_markdown,
)
from liftpose.tables.spec import (
    CONVERGENCE_KEYS,
    SCALES,
    Row,
    TableSpec,
    convergence,
    find_specs,
    load_spec,
)
from liftpose.utils.config_check import composition_error
from liftpose.utils.io import atomic_write_text
from liftpose.utils.run import CONF_DIR

#: config keys that do not change what a run computes, left out of its hash
UNHASHED = ("hydra", "paths", "logger", "table", "tags", "task_name", "ckpt_path")
UNHASHED_TRAINER = ("enable_progress_bar", "log_every_n_steps")
#: callbacks that report or save progress without changing what a run computes
UNHASHED_CALLBACKS = ("log_progress", "time_checkpoint")
#: keys naming where a run writes, left out at any depth (they follow the run folder)
OUTPUT_KEYS = ("dirpath", "default_root_dir", "save_dir")
DEFAULT_EXPERIMENTS = Path(os.environ.get("LIFTPOSE_EXPERIMENTS", CONF_DIR.parent / "experiments"))


@dataclass
class Job:
    row: Row
    seed: int
    overrides: list[str]
    dir: Path  # results/<paper>/<table>/<row>/seed<k>-<hash>

    @property
    def done(self) -> bool:
        return (self.dir / "metrics.json").is_file()


def compose_job(overrides: list[str]) -> DictConfig:
    """The ``train`` config of a job, resolved, without its ``hydra`` node.

    ``paths.output_dir`` is ``.``; ``${hydra:...}`` interpolations are resolved against the
    job's Hydra config, which is not left behind as the process's current Hydra config.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = "."
        cfg.paths.output_dir = "."
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(cfg)
    try:
        with open_dict(cfg):
            del cfg["hydra"]
        OmegaConf.resolve(cfg)
    finally:
        hydra_config.cfg = previous
    return cfg


def drop_defaults(node: Any) -> Any:
    """``node`` without the arguments of its ``_target_`` that equal the callable's defaults
    (and without the output locations of :data:`OUTPUT_KEYS`).

    A new option added to a config at its default value then leaves the hash of every earlier
    run unchanged, so finished runs stay valid.
    """
    if isinstance(node, list):
        return [drop_defaults(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: drop_defaults(v) for k, v in node.items() if k not in OUTPUT_KEYS}
    target = out.get("_target_")
    if isinstance(target, str):
        try:
            params = inspect.signature(get_object(target)).parameters
        except Exception:  # noqa: BLE001 - an unknown target keeps all its keys
            return out
        for name, param in params.items():
            if name in out and param.default is not inspect.Parameter.empty:
                if out[name] == param.default:
                    del out[name]
    return out


def config_hash(cfg: DictConfig | dict) -> str:
    """Eight hex digits identifying what a run computes (see :data:`UNHASHED`; arguments at
    their defaults are left out, see :func:`drop_defaults`)."""
    doc = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    assert isinstance(doc, dict)
    doc = {k: v for k, v in doc.items() if k not in UNHASHED}
    if isinstance(doc.get("trainer"), dict):
        doc["trainer"] = {k: v for k, v in doc["trainer"].items() if k not in UNHASHED_TRAINER}
    if isinstance(doc.get("callbacks"), dict):
        cbs = doc["callbacks"]
        doc["callbacks"] = {k: v for k, v in cbs.items() if k not in UNHASHED_CALLBACKS}
    blob = json.dumps(drop_defaults(doc), sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def table_dir(results: Path, spec: TableSpec) -> Path:
    return results / spec.group / spec.name


#: ``ckpt://<paper>/<table>/<row>`` in an override value: that row's checkpoint at this scale
CKPT_REF = re.compile(r"ckpt://([\w.-]+)/([\w.-]+)/([\w.-]+)")


def checkpoint_of(ref: str, spec: TableSpec, scale: str, results: Path, extra: list[str]) -> str:
    """The checkpoint of the first-seed run of row ``<paper>/<table>/<row>`` at ``scale``.

    A table may build on another's trained models (Table V lifts the 2-D of Table I's
    detectors); the referenced run must be finished, and its folder (hence its config) is part
    of the referring run's hash.
    """
    m = CKPT_REF.fullmatch(ref)
    if m is None:
        raise ConfigError(
            f"experiments/{spec.id}.yaml: {ref!r} is not ckpt://<paper>/<table>/<row>"
        )
    paper, table, row = m.groups()
    path = spec.path.parent.parent / paper / f"{table}.yaml"
    if not path.is_file():
        raise ConfigError(f"experiments/{spec.id}.yaml: {ref}: no spec {path}")
    other = load_spec(path, path.parent.parent)
    if scale not in other.scales:
        raise ConfigError(f"{ref}: {other.id} has no scale {scale!r}")
    seed = other.scales[scale].seeds[0]
    for job in plan(other, scale, results, extra):
        if job.row.name == row and job.seed == seed:
            if not job.done:
                raise ConfigError(
                    f"experiments/{spec.id}.yaml needs {ref}, which has no finished run at "
                    f"scale {scale} ({job.dir}); run `liftpose-tables --scale {scale} "
                    f"--tables {other.id}` first"
                )
            doc = json.loads((job.dir / "metrics.json").read_text())
            return str(doc.get("ckpt_path") or job.dir / "checkpoints" / "last.ckpt")
    raise ConfigError(f"experiments/{spec.id}.yaml: {ref}: {other.id} has no row {row!r}")


def plan(
    spec: TableSpec, scale: str, results: Path, extra: list[str], strict: bool = True
) -> list[Job]:
    """Every job of a table at a scale, with the folder its resolved config maps to.

    Seed-major order: every row's first seed runs before any row's second, so an interrupted
    reproduction already has a whole table at one seed. ``ckpt://`` references in the
    overrides become the referenced runs' checkpoints (:func:`checkpoint_of`); with
    ``strict=False`` (rendering only) a reference to a run that is not finished stays as it is,
    and the rows that need it are simply not done.
    """
    jobs = []
    refs: dict[str, str] = {}  # each referenced table is planned once

    def checkpoint(m: re.Match) -> str:
        if m.group(0) not in refs:
            try:
                refs[m.group(0)] = checkpoint_of(m.group(0), spec, scale, results, extra)
            except ConfigError:
                if strict:
                    raise
                refs[m.group(0)] = m.group(0)
        return refs[m.group(0)]

    for seed in spec.scales[scale].seeds:
        for row in spec.runnable_rows:
            ov = [CKPT_REF.sub(checkpoint, o) for o in spec.job_overrides(row, scale, seed, extra)]
            try:
                h = config_hash(compose_job(ov))
            except Exception as e:  # noqa: BLE001 - any composition error names the row
                why = composition_error(e, ov) if isinstance(e, HydraException) else e
                raise ConfigError(
                    f"experiments/{spec.id}.yaml: rows[{row.name}] at scale {scale}: "
                    f"the overrides do not compose: {why}"
                ) from e
            job = Job(row, seed, ov, table_dir(results, spec) / row.name / f"seed{seed}-{h}")
            if not job.done:
                reuse_identical_run(job, results)
            jobs.append(job)
    return jobs


def rehash(results: Path) -> list[tuple[Path, Path]]:
    """Rename finished run folders to the hash of the config they stored, as computed now.

    After an upgrade that changes how configs are hashed (or a spec's scale presets), finished
    runs keep counting instead of being run again. Returns the ``(old, new)`` renames.
    """
    moved = []
    for metrics in sorted(results.glob("*/*/*/seed*-*/metrics.json")):
        run = metrics.parent
        if run.is_symlink():
            continue
        seed = run.name.split("-", 1)[0]
        target = run.with_name(f"{seed}-{config_hash(json.loads(metrics.read_text())['config'])}")
        if target != run and not target.exists():
            run.rename(target)
            moved.append((run, target))
    for link in results.glob("*/*/*/seed*-*"):
        if link.is_symlink() and not link.exists():
            link.unlink()  # pointed at a folder that moved; planning links it again
    return moved


def reuse_identical_run(job: Job, results: Path) -> None:
    """Link ``job.dir`` to a finished run of the same config in another table, if there is one.

    Tables share rows (Table IX's PoseFormer at 81 frames is Table X's default learning rate);
    such a run is computed once.
    """
    for found in sorted(results.glob(f"*/*/*/{job.dir.name}/metrics.json")):
        if found.parent != job.dir and not found.parent.is_symlink():
            if job.dir.exists() or job.dir.is_symlink():
                return  # an unfinished run of its own: resume that instead
            job.dir.parent.mkdir(parents=True, exist_ok=True)
            job.dir.symlink_to(os.path.relpath(found.parent, job.dir.parent))
            return


def hydra_quote(text: str) -> str:
    """A Hydra override value quoted so that any characters survive."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def job_overrides(spec: TableSpec, scale: str, job: Job, root: Path) -> list[str]:
    """The job's overrides plus its bookkeeping under ``table.*`` (logged, not hashed)."""
    ov = list(job.overrides)
    last = job.dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        ov.append(f"ckpt_path={hydra_quote(str(last))}")  # resume an interrupted run
    meta = {
        "paper": spec.paper,
        "id": spec.id,
        "group": f"{spec.id}@{scale}",
        "row": job.row.name,
        "scale": scale,
        "overrides": " ".join(job.row.overrides),
        "dir": str(job.dir.relative_to(root)),
    }
    return ov + [f"+table.{k}={hydra_quote(v)}" for k, v in meta.items()]


def launch(
    spec: TableSpec,
    scale: str,
    jobs: list[Job],
    results: Path,
    launcher: str,
    logger: str,
    verbose: bool,
) -> int:
    """Run ``jobs`` as one Hydra multirun (a ``liftpose-train -m`` process); its exit status."""
    root = table_dir(results, spec)
    root.mkdir(parents=True, exist_ok=True)
    for job in jobs:  # an earlier failure's log must not outlive the new attempt
        (job.dir / "error.log").unlink(missing_ok=True)
    jobs_file = root / "jobs.json"
    atomic_write_text(
        jobs_file,
        json.dumps(
            {"jobs": [{"overrides": job_overrides(spec, scale, j, root)} for j in jobs]}, indent=1
        ),
    )
    cmd = [
        sys.executable,
        "-m",
        "liftpose.train",
        "-m",
        "hydra/sweeper=rows",
        f"hydra.sweeper.jobs_file={hydra_quote(str(jobs_file))}",
        f"hydra.sweep.dir={hydra_quote(str(root))}",
        "hydra.sweep.subdir=${table.dir}",
        f"launcher={launcher}",
        f"logger={logger}",
        f"task_name={spec.name}",
    ]
    log = root / "multirun.log"
    print(f"[{spec.id}] running {len(jobs)} job(s); log: {log}", flush=True)
    with open(log, "a", buffering=1) as fh:  # line-buffered: follow it with tail -f
        fh.write(f"\n### {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        fh.flush()
        env = dict(os.environ, PYTHONUNBUFFERED="1")  # stream the jobs' output as it comes
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            if verbose:
                sys.stdout.write(line)
        rc = proc.wait()
    if rc != 0:  # a job the multirun never finished and that left no error of its own
        for job in jobs:
            if not job.done and not (job.dir / "error.log").exists():
                job.dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(
                    job.dir / "error.log",
                    f"the multirun stopped (exit {rc}) before this job finished; its output "
                    f"is in {log}\n",
                )
    return rc


def collect(spec: TableSpec, scale: str, jobs: list[Job]) -> list[RowResult]:
    """Read the finished runs of each row (and note the failed ones)."""
    out = []
    for row in spec.rows:
        if row.reference:  # the paper's numbers only
            out.append(RowResult(row=row))
            continue
        res = RowResult(row=row, seeds_planned=list(spec.scales[scale].seeds))
        for job in (j for j in jobs if j.row is row):
            if job.done:
                doc = json.loads((job.dir / "metrics.json").read_text())
                res.seeds_done.append(job.seed)
                conv = convergence(doc.get("val_history", []), spec.convergence_tolerance)
                for col in spec.columns:
                    if col.at is None:
                        v = doc["metrics"].get(col.key, doc.get(col.key))
                        if col.key in CONVERGENCE_KEYS:
                            v = None if conv is None else conv[col.key.endswith("minutes")]
                        if v is not None:
                            res.values.setdefault(col.key, []).append(float(v))
                if doc.get("git_commit"):
                    res.commits.add(str(doc["git_commit"])[:12])
            elif (job.dir / "error.log").is_file():
                res.failed.append(str(job.dir / "error.log"))
        for col in spec.columns:
            if col.at is not None:
                res.values[col.key] = [computed(spec, row, col.at, col.key)]
        if not spec.needs_runs:  # nothing to train: the computed columns are the result
            res.seeds_done = list(res.seeds_planned)
        out.append(res)
    return out


def computed(spec: TableSpec, row: Row, scale: str, key: str) -> float:
    """A column computed from the row's model built at ``scale``, on the meta device (no
    memory, no time): parameter counts, or GFLOPs of one eval-mode forward of one window."""
    import torch
    from hydra.utils import instantiate
    from torch.utils.flop_counter import FlopCounterMode

    cfg = compose_job(spec.job_overrides(row, scale, spec.scales[scale].seeds[0]))
    if key == "fps":
        return inference_fps(instantiate(cfg.model))
    with torch.device("meta"):
        model = instantiate(cfg.model).eval()
        if key == "gflops":
            if hasattr(model, "example_input"):  # an image model
                x = model.example_input(1)
            else:  # a lifter: one window
                t = int(getattr(model, "receptive_field", cfg.frames))
                joints = int(getattr(model, "num_joints", 17))
                x = torch.zeros(1, t, joints, int(getattr(model, "in_channels", 2)))
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                model(x)
            return counter.get_total_flops() / 1e9
    n = sum(p.numel() for p in model.parameters())
    return float(n) if key == "params" else n / 1e6


def inference_fps(model: Any, batch: int = 64, repeats: int = 3) -> float:
    """Windows (one predicted frame each) per second of eval-mode inference, batch ``batch``."""
    import statistics

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device).eval()
    t = int(model.receptive_field)
    x = torch.randn(batch, t, int(model.num_joints), int(model.in_channels), device=device)
    rates = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(x)
            if device == "cuda":
                torch.cuda.synchronize()
            rates.append(batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def write_outputs(spec: TableSpec, scale: str, results: Path, rows: list[RowResult]) -> Path:
    md = results / spec.group / f"{spec.name}.md"
    atomic_write_text(md, render_markdown(spec, rows, scale))
    atomic_write_text(md.with_suffix(".csv"), render_csv(spec, rows, scale))
    return md


def write_index(results: Path, experiments: Path) -> None:
    """``results/README.md`` over every table rendered so far (read back from the CSVs)."""
    import csv

    entries = []
    for spec in find_specs(experiments, "*"):
        path = results / spec.group / f"{spec.name}.csv"
        if path.is_file():
            lines = list(csv.DictReader(path.open()))
            status = [line["status"] for line in lines]
            scale = lines[0]["scale"] if lines else "?"
            entries.append((spec, scale, status))
    atomic_write_text(results / "README.md", render_index(entries))


def log_table_to_wandb(spec: TableSpec, scale: str, results: Path, rows: list[RowResult]) -> None:
    """Log the rendered table as a ``wandb.Table`` in a run of the table's wandb group."""
    import wandb

    from liftpose.utils.loggers import wandb_mode

    head, data = records(spec, rows, scale)
    mode = wandb_mode()
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "liftpose"),
        group=f"{spec.id}@{scale}",
        job_type="table",
        name=f"{spec.id}@{scale}",
        tags=[spec.paper, spec.id, scale],
        dir=str(table_dir(results, spec)),
        mode=mode,
        reinit="finish_previous",
    )
    run.log({"table": wandb.Table(columns=head, data=data)})
    run.finish()
    if mode == "offline":
        print(
            f"[{spec.id}] wandb table logged offline; upload with `wandb sync "
            f"{table_dir(results, spec)}/wandb/offline-run-*`",
            flush=True,
        )


def reproduce(
    scale: str = "smoke",
    tables: str = "*",
    results: str | Path = "results",
    experiments: str | Path = DEFAULT_EXPERIMENTS,
    launcher: str = "basic",
    logger: str = "csv",
    extra: list[str] | None = None,
    render_only: bool = False,
    verbose: bool = False,
    seeds: list[int] | None = None,
    rows: str | None = None,
) -> dict[str, list[RowResult]]:
    """Run (what is not done of) every matching table at ``scale`` and render all of them."""
    if scale not in SCALES:
        raise ConfigError(f"--scale {scale!r}: one of {', '.join(SCALES)}")
    results, experiments = Path(results).resolve(), Path(experiments)
    if results.exists() and not results.is_dir():
        raise ConfigError(f"--results {results}: a file, not a folder")
    for group, option in (("launcher", launcher), ("logger", logger)):
        options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        if option not in options:
            raise ConfigError(f"--{group} {option}: no such option ({', '.join(options)})")
    specs = find_specs(experiments, tables)
    if not specs:
        raise ConfigError(f"no table spec in {experiments} matches {tables!r}")
    if rows is not None and not any(
        fnmatch.fnmatch(r.name, g) for s in specs for r in s.runnable_rows for g in rows.split(",")
    ):
        raise ConfigError(f"--rows {rows}: matches no row of the selected tables")
    if seeds is not None and not any(
        seed in s.scales[scale].seeds for s in specs if scale in s.scales for seed in seeds
    ):
        raise ConfigError(f"--seeds {seeds}: none is a seed of the selected tables at {scale}")
    out: dict[str, list[RowResult]] = {}
    for spec in specs:
        jobs = plan(spec, scale, results, list(extra or []), strict=not render_only)
        todo = [j for j in jobs if not j.done and (seeds is None or j.seed in seeds)]
        if rows is not None:
            todo = [j for j in todo if any(fnmatch.fnmatch(j.row.name, r) for r in rows.split(","))]
        todo = [] if render_only or not spec.needs_runs else todo
        done = sum(j.done for j in jobs)
        print(f"[{spec.id}] {done} of {len(jobs)} run(s) done", flush=True)
        if todo:
            t0 = time.time()
            rc = launch(spec, scale, todo, results, launcher, logger, verbose)
            print(f"[{spec.id}] multirun exit {rc} after {time.time() - t0:.0f} s", flush=True)
        rendered = collect(spec, scale, jobs)
        md = write_outputs(spec, scale, results, rendered)
        print(f"[{spec.id}] wrote {md}", flush=True)
        if logger in ("wandb", "many") and not render_only:
            log_table_to_wandb(spec, scale, results, rendered)
        out[spec.id] = rendered
    write_index(results, experiments)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="liftpose-tables",
        description="Reproduce paper tables (experiments/<paper>/<table>.yaml) and render "
        "results/<paper>/<table>.md beside the papers' numbers. Arguments after `--` are "
        "Hydra overrides added to every job.",
    )
    p.add_argument("--scale", default="smoke", choices=SCALES)
    p.add_argument("--tables", default="*", help="glob over <paper>/<table> (default: all)")
    p.add_argument("--results", default="results")
    p.add_argument("--experiments", default=str(DEFAULT_EXPERIMENTS))
    p.add_argument("--launcher", default="basic", help="a conf/launcher option")
    p.add_argument(
        "--logger",
        default="csv",
        help="a conf/logger option (wandb: one group per table, and the rendered table logged)",
    )
    p.add_argument("--render-only", action="store_true", help="render from existing runs")
    p.add_argument(
        "--rehash",
        action="store_true",
        help="first rename finished runs to the current hash of their stored config",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="stream the jobs' output")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="run only these of each spec's seeds now (the table shows the rest as missing)",
    )
    p.add_argument(
        "--rows",
        default=None,
        help="run only the rows whose names match these comma-separated globs now",
    )
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every job")
    args = p.parse_args(argv)
    if args.rehash:
        for old, new in rehash(Path(args.results).resolve()):
            print(f"renamed {old} -> {new.name}")
    try:
        out = reproduce(
            args.scale,
            args.tables,
            args.results,
            args.experiments,
            args.launcher,
            args.logger,
            args.overrides,
            args.render_only,
            args.verbose,
            args.seeds,
            args.rows,
        )
    except (ConfigError, DataError) as e:
        print(f"liftpose-tables: error: {e}", file=sys.stderr)
        return 2
    bad = [f"{t}:{r.row.name}" for t, rows in out.items() for r in rows if r.status == "failed"]
    if bad:
        print(f"liftpose-tables: failed rows: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
