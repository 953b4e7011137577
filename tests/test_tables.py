"""Paper-table specs, the renderer, the reproduction runner, sweeps, launchers and multiruns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from liftpose.errors import ConfigError, DataError
from liftpose.tables import find_specs, load_spec
from liftpose.tables.render import RowResult, render_markdown
from liftpose.tables.run import (
    DEFAULT_EXPERIMENTS,
    Job,
    collect,
    compose_job,
    config_hash,
    plan,
)
from liftpose.utils.config_check import check_config
from liftpose.utils.run import CONF_DIR

from .test_train import tiny_overrides

REAL_SPECS = find_specs(DEFAULT_EXPERIMENTS)


def test_there_are_specs():
    ids = {s.id for s in REAL_SPECS}
    assert {"attn_2d3d/table09_frames", "attn_2d3d/table10_lr"} <= ids


@pytest.mark.parametrize("spec", REAL_SPECS, ids=[s.id for s in REAL_SPECS])
@pytest.mark.parametrize("scale", ["smoke", "cpu", "full"])
def test_every_spec_row_composes_and_builds(spec, scale):
    """Each row's overrides compose at every scale and its model builds."""
    hashes = set()
    for row in spec.runnable_rows:
        cfg = compose_job(spec.job_overrides(row, scale, spec.scales[scale].seeds[0]))
        check_config(cfg)  # types and ranges, as liftpose-train checks them
        with torch.device("meta"):  # builds the model without allocating its weights
            model = instantiate(cfg.model)
        assert sum(p.numel() for p in model.parameters()) > 0
        hashes.add(config_hash(cfg))
    if spec.needs_runs and scale != "smoke":  # smoke may shrink rows to the same model
        assert len(hashes) == len(spec.runnable_rows), "two rows of a table run the same config"


COMPUTED = [(s, c) for s in REAL_SPECS for c in s.columns if c.at is not None and c.key != "fps"]


@pytest.mark.parametrize("spec,col", COMPUTED, ids=[f"{s.id}:{c.key}" for s, c in COMPUTED])
def test_every_computed_column_computes(spec, col):
    """Parameter counts and GFLOPs of every row come out of the model built on the meta device
    (what ``liftpose-tables --render-only`` shows without any run)."""
    from liftpose.tables.run import computed

    assert COMPUTED
    for row in spec.runnable_rows:
        assert computed(spec, row, col.at, col.key) > 0, row.name


def write_spec(root: Path, doc: dict, name: str = "t/tiny.yaml") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


SPEC = {
    "paper": "tiny-paper",
    "title": "Table 1: tiny",
    "caption": "A   TABLE\n FOR TESTS",
    "labels": ["Method"],
    "columns": [
        {"key": "test/mpjpe", "name": "MPJPE", "fmt": ".1f"},
        {"key": "params_m", "name": "Params", "fmt": ".3f"},
    ],
    "rows": [
        {"name": "a", "labels": {"Method": "A"}, "overrides": [], "paper": {"test/mpjpe": 50.0}},
        {"name": "b", "labels": {"Method": "B"}, "overrides": ["module.optimizer.lr=1e-4"],
         "paper": {"test/mpjpe": 40.0, "params_m": 1.0}},
    ],
    "scales": {"smoke": {"seeds": [0, 1]}},
}  # fmt: skip


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda d: d["columns"].append({"key": "test/nope"}), "columns[2].key"),
        (lambda d: d["rows"][0]["paper"].update({"test/pck": 1.0}), "rows[0].paper.test/pck"),
        (lambda d: d["rows"][1].update({"name": "a"}), "rows[1].name"),
        (lambda d: d.pop("rows"), "rows"),
        (lambda d: d.update({"scales": {"huge": {}}}), "scales.huge"),
        (lambda d: d["rows"][0].update({"overrides": "frames=9"}), "rows[0].overrides"),
        (lambda d: d.update({"colums": []}), "colums"),
    ],
)
def test_bad_spec_names_file_and_field(tmp_path, edit, field):
    doc = json.loads(json.dumps(SPEC))
    edit(doc)
    path = write_spec(tmp_path, doc)
    with pytest.raises(DataError) as e:
        load_spec(path)
    assert str(path) in str(e.value) and f": {field}:" in str(e.value)


def fake_run(job_dir: Path, mpjpe: float, params_m: float, commit: str = "abc") -> None:
    job_dir.mkdir(parents=True)
    doc = {"metrics": {"test/mpjpe": mpjpe}, "params_m": params_m, "git_commit": commit}
    (job_dir / "metrics.json").write_text(json.dumps(doc))


def test_renderer_on_fixed_metrics_files(tmp_path):
    spec = load_spec(write_spec(tmp_path / "exp", SPEC), tmp_path / "exp")
    runs = tmp_path / "runs"
    a, b = spec.rows
    jobs = [
        Job(a, 0, [], runs / "a" / "seed0-x"),
        Job(a, 1, [], runs / "a" / "seed1-x"),
        Job(b, 0, [], runs / "b" / "seed0-y"),
        Job(b, 1, [], runs / "b" / "seed1-y"),
    ]
    fake_run(jobs[0].dir, 52.0, 0.5)
    fake_run(jobs[1].dir, 54.0, 0.5)
    jobs[2].dir.mkdir(parents=True)
    (jobs[2].dir / "error.log").write_text("Traceback ...")
    fake_run(jobs[3].dir, 39.0, 1.25)
    md = render_markdown(spec, collect(spec, "smoke", jobs), "smoke")
    desc = spec.scales["smoke"].description
    expected = f"""# tiny-paper — Table 1: tiny

> A TABLE FOR TESTS

Scale **smoke**{f" ({desc})" if desc else ""}; seeds 0, 1; spec `experiments/t/tiny.yaml`.

| Method | MPJPE paper | MPJPE ours | MPJPE Δ | Params paper | Params ours | Params Δ | scale | status |
|---|---:|---:|---:|---:|---:|---:|---|---|
| A | 50.0 | 53.0 ± 1.4 | +3.0 | – | 0.500 ± 0.000 | – | smoke | ok |
| B | 40.0 | 39.0 | -1.0 | 1.000 | 1.250 | +0.250 | smoke | failed: `{jobs[2].dir}/error.log` |

Runs at commit `abc`.
"""
    assert md == expected


def test_reference_rows_are_rendered_and_never_run(tmp_path):
    doc = json.loads(json.dumps(SPEC))
    doc["rows"].append(
        {"name": "c", "labels": {"Method": "C"}, "reference": True, "paper": {"test/mpjpe": 45.0}}
    )
    spec = load_spec(write_spec(tmp_path / "exp", doc), tmp_path / "exp")
    assert [r.name for r in spec.runnable_rows] == ["a", "b"]
    jobs = plan(spec, "smoke", tmp_path / "results", [])
    assert {j.row.name for j in jobs} == {"a", "b"}
    md = render_markdown(spec, collect(spec, "smoke", jobs), "smoke")
    assert "| C | 45.0 | – | – | – | – | – | smoke | paper only |" in md
    doc["rows"][2]["reference"] = "yes"
    with pytest.raises(DataError, match=r"rows\[2\].reference"):
        load_spec(write_spec(tmp_path / "exp", doc), tmp_path / "exp")


def test_identical_run_of_another_table_is_reused(tmp_path):
    spec = load_spec(write_spec(tmp_path / "exp", SPEC), tmp_path / "exp")
    results = tmp_path / "results"
    jobs = plan(spec, "smoke", results, [])
    assert [j.done for j in jobs] == [False] * 4
    assert len({j.dir.name for j in jobs}) == 4  # seeds and rows differ
    fake_run(results / "other" / "t9" / "x" / jobs[0].dir.name, 1.0, 2.0)
    again = plan(spec, "smoke", results, [])
    assert again[0].done and again[0].dir.is_symlink()
    assert [j.done for j in again[1:]] == [False] * 3


def test_ckpt_reference_names_the_other_tables_checkpoint(tmp_path):
    """``ckpt://<paper>/<table>/<row>`` becomes that row's checkpoint at the same scale, and a
    missing run stops planning with the command that makes it."""
    exp, results = tmp_path / "exp", tmp_path / "results"
    base = load_spec(write_spec(exp, SPEC), exp)
    doc = json.loads(json.dumps(SPEC))
    doc["rows"] = [dict(doc["rows"][0], overrides=["+note=ckpt://t/tiny/b"])]
    user = load_spec(write_spec(exp, doc, "t/user.yaml"), exp)
    with pytest.raises(ConfigError, match="--tables t/tiny"):
        plan(user, "smoke", results, [])
    # rendering only: the rows that need the missing run are not done; nothing stops
    pending = plan(user, "smoke", results, [], strict=False)
    assert pending and not any(j.done for j in pending)
    assert "+note=ckpt://t/tiny/b" in pending[0].overrides
    target = next(j for j in plan(base, "smoke", results, []) if j.row.name == "b" and j.seed == 0)
    fake_run(target.dir, 1.0, 1.0)
    jobs = plan(user, "smoke", results, [])
    assert f"+note={target.dir / 'checkpoints' / 'last.ckpt'}" in jobs[0].overrides
    doc["rows"][0]["overrides"] = ["+note=ckpt://t/tiny/zz"]
    with pytest.raises(ConfigError, match="no row 'zz'"):
        plan(load_spec(write_spec(exp, doc, "t/user.yaml"), exp), "smoke", results, [])


@pytest.mark.parametrize(
    "extra,said",
    [
        ("model.dropout=1.5", "model.dropout: no such key in the config; add it with +model."),
        ("model.depth=[1", "model.depth=[1: not a valid override (no viable alternative"),
    ],
)
def test_an_override_that_does_not_compose_is_one_line(tmp_path, extra, said):
    spec = load_spec(write_spec(tmp_path / "exp", SPEC), tmp_path / "exp")
    with pytest.raises(ConfigError) as e:
        plan(spec, "smoke", tmp_path / "results", [extra])
    assert f"the overrides do not compose: {said}" in str(e.value)
    assert len(str(e.value).splitlines()) == 1


def test_rows_and_seeds_choose_what_runs_now(tmp_path, monkeypatch):
    """``--rows`` and ``--seeds`` pick the jobs launched in every matching table."""
    import liftpose.tables.run as run

    exp = tmp_path / "exp"
    write_spec(exp, SPEC, "t/one.yaml")
    write_spec(exp, SPEC, "t/two.yaml")
    launched = []
    monkeypatch.setattr(
        run,
        "launch",
        lambda spec, scale, jobs, *a: (
            launched.extend((spec.name, j.row.name, j.seed) for j in jobs) or 0
        ),
    )
    run.reproduce("smoke", "t/*", tmp_path / "results", exp, seeds=[1], rows="b,z*")
    assert launched == [("one", "b", 1), ("two", "b", 1)]


def test_row_result_status():
    row = load_spec.__globals__["Row"]("r", [], {})
    assert RowResult(row, seeds_planned=[0]).status == "missing"
    assert RowResult(row, seeds_planned=[0, 1], seeds_done=[0]).status == "partial"
    assert RowResult(row, seeds_planned=[0], seeds_done=[0]).status == "ok"


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml")))
def test_every_sweep_expands_to_configs_that_build(name):
    """Each value of each swept key is a valid override: the job configs compose and build."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"sweep={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params, f"sweep={name} sets no hydra.sweeper.params"
    parser = OverridesParser.create()
    for key, values in params.items():
        (ov,) = parser.parse_overrides([f"{key}={values}"])
        assert ov.is_sweep_override(), key
        for value in ov.sweep_string_iterator():
            job = compose_job([f"sweep={name}", f"{key}={value}"])
            assert str(OmegaConf.select(job, key)) == str(yaml.safe_load(value)), (key, value)
            check_config(job)
            instantiate(job.model)
            instantiate(job.data)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "launcher").glob("*.yaml")))
def test_every_launcher_composes(name):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"launcher={name}"], return_hydra_config=True)
    target = cfg.hydra.launcher._target_
    assert name.split("_")[0] in target.lower()
    assert get_class(target)  # the plugin is installed
    if name == "submitit_slurm":
        job = compose_job(["launcher=submitit_slurm", "hydra.launcher.gpus_per_node=4"])
        assert job.trainer.devices == 4 and job.trainer.strategy == "ddp"
        assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node  # a rank each


# --- end to end: the runner, multiruns, DDP, wandb -------------------------------------------

TINY_RUN = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=2",
    "data.test_batch_size=64",
    "model.embed_dim_ratio=4",
]


def tiny_spec(root: Path, rows: list[dict], seeds=(0,)) -> Path:
    doc = {
        "paper": "tiny-paper",
        "title": "Table T: tiny",
        "columns": [{"key": "test/mpjpe", "name": "MPJPE"}, {"key": "params_m", "name": "P"}],
        "rows": rows,
        "scales": {"smoke": {"seeds": list(seeds)}},
    }
    return write_spec(root / "exp", doc, "tiny/t1.yaml")


def tables_cmd(exp: Path, results: Path, tiny_root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "liftpose.tables.run",
        "--scale",
        "smoke",
        "--experiments",
        str(exp),
        "--results",
        str(results),
        *extra,
        *tiny_overrides(tiny_root, results.parent / "cache", epochs=1),
        *TINY_RUN,
    ]


def env_for(tmp_path: Path) -> dict:
    return dict(os.environ, LIFTPOSE_ROOT=str(tmp_path), WANDB_MODE="offline")


ROWS = [
    {"name": "ok", "overrides": [], "paper": {"test/mpjpe": 45.0}},
    {"name": "lr", "overrides": ["module.optimizer.lr=1e-4"], "paper": {"test/mpjpe": 44.0}},
]


@pytest.mark.slow
def test_failing_row_is_reported_and_the_rest_rendered_then_nothing_reruns(tiny_root, tmp_path):
    rows = [*ROWS, {"name": "bad", "overrides": ["data.keypoints=nosuch"], "paper": {}}]
    tiny_spec(tmp_path, rows)
    results = tmp_path / "results"
    cmd = tables_cmd(tmp_path / "exp", results, tiny_root)
    proc = subprocess.run(cmd, env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed rows: tiny/t1:bad" in proc.stderr
    md = (results / "tiny" / "t1.md").read_text()
    ok_line = next(line for line in md.splitlines() if line.startswith("| 45.0"))
    assert "| ok |" in ok_line
    bad_line = next(line for line in md.splitlines() if "failed" in line)
    log = bad_line.split("`")[1]
    assert Path(log).is_file() and "data_2d_tiny_nosuch.npz" in Path(log).read_text()
    assert (results / "README.md").is_file() and (results / "tiny" / "t1.csv").is_file()
    done = sorted(results.glob("tiny/t1/*/seed0-*/metrics.json"))
    assert [p.parts[-3] for p in done] == ["lr", "ok"]
    stamps = {p: p.stat().st_mtime_ns for p in done}

    # a second run re-attempts only the failed row
    proc = subprocess.run(cmd, env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert "[tiny/t1] 2 of 3 run(s) done" in proc.stdout, proc.stdout
    assert {p: p.stat().st_mtime_ns for p in done} == stamps


@pytest.mark.slow
def test_killed_reproduction_resumes(tiny_root, tmp_path):
    tiny_spec(tmp_path, ROWS)
    results = tmp_path / "results"
    cmd = tables_cmd(tmp_path / "exp", results, tiny_root)
    proc = subprocess.Popen(cmd, env=env_for(tmp_path), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not list(results.glob("tiny/t1/*/*/metrics.json")) and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its multirun
    proc.wait()
    first = list(results.glob("tiny/t1/*/*/metrics.json"))
    assert len(first) == 1, "killed before or after the first row finished"
    stamp = first[0].stat().st_mtime_ns
    out = subprocess.run(cmd, env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "[tiny/t1] 1 of 2 run(s) done" in out.stdout
    assert first[0].stat().st_mtime_ns == stamp
    assert len(list(results.glob("tiny/t1/*/*/metrics.json"))) == 2
    assert "| ok |" in (results / "tiny" / "t1.md").read_text()


@pytest.mark.slow
def test_wandb_offline_logs_each_row_and_the_table(tiny_root, tmp_path):
    tiny_spec(tmp_path, ROWS[:1])
    results = tmp_path / "results"
    cmd = tables_cmd(tmp_path / "exp", results, tiny_root, "--logger", "wandb")
    out = subprocess.run(cmd, env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table_runs = list((results / "tiny" / "t1" / "wandb").glob("offline-run-*"))
    assert len(table_runs) == 1
    (table_json,) = table_runs[0].glob("files/media/table/table_*.table.json")
    logged = json.loads(table_json.read_text())
    assert logged["columns"][:2] == ["row", "test/mpjpe:paper"]
    assert logged["data"][0][0] == "ok" and logged["data"][0][1] == 45.0
    row_runs = list(results.glob("tiny/t1/ok/seed0-*/wandb/offline-run-*"))
    assert len(row_runs) == 1  # the job's own run, finished
    assert "wandb sync" in (results / "tiny" / "t1" / "multirun.log").read_text()


@pytest.mark.slow
def test_multirun_with_ddp_spawn_gives_one_folder_per_job(tiny_root, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "liftpose.train", "-m", "trainer=ddp_sim", "seed=0,1",
        f"hydra.sweep.dir={sweep}", "logger=csv",
        *tiny_overrides(tiny_root, tmp_path / "cache", epochs=1), *TINY_RUN,
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folders = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert folders == ["0", "1"]
    assert all((sweep / f / "metrics.json").is_file() for f in folders)
    assert not (tmp_path / "logs").exists()  # no rank started a run of its own

    # strategy=ddp re-executes the command line: refused inside a multirun
    bad = [c for c in cmd if c != "trainer=ddp_sim"] + [
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32",
        "trainer.sync_batchnorm=false", f"hydra.sweep.dir={tmp_path / 'bad'}",
    ]  # fmt: skip
    out = subprocess.run(bad, env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert out.returncode != 0
    assert "re-runs the command line" in (tmp_path / "bad" / "0" / "error.log").read_text()
    assert sorted(p.name for p in (tmp_path / "bad").iterdir() if p.is_dir()) == ["0", "1"]


@pytest.mark.slow
def test_submitit_local_launcher_runs_jobs_as_processes(tiny_root, tmp_path):
    """The submitit path of the SLURM launcher (pickled task, one process per job)."""
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "liftpose.train", "-m", "launcher=submitit_local", "seed=0",
        f"hydra.sweep.dir={sweep}", "logger=csv",
        *tiny_overrides(tiny_root, tmp_path / "cache", epochs=1), *TINY_RUN,
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env_for(tmp_path), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (sweep / "0" / "metrics.json").is_file()
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))  # it went through submitit


def test_convergence_rule():
    from liftpose.tables.spec import convergence

    history = [[1, 60.0, 100.0], [2, 120.0, 60.0], [3, 180.0, 50.4], [4, 240.0, 50.0]]
    assert convergence(history, 0.01) == (3, 3.0)  # 50.4 <= 50.0 * 1.01
    assert convergence(history, 0.0) == (4, 4.0)
    assert convergence(history, 0.25) == (2, 2.0)
    assert convergence([], 0.01) is None


def test_rehash_renames_finished_runs_to_their_config_hash(tmp_path):
    from liftpose.tables.run import rehash

    cfg = {"seed": 3, "model": {"_target_": "liftpose.models.PoseFormer", "depth": 2}}
    old = tmp_path / "p" / "t" / "row" / "seed3-deadbeef"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text(json.dumps({"metrics": {}, "config": cfg}))
    (tmp_path / "p" / "t2" / "row").mkdir(parents=True)
    link = tmp_path / "p" / "t2" / "row" / "seed3-deadbeef"
    link.symlink_to(old)
    moved = rehash(tmp_path)
    new = old.with_name(f"seed3-{config_hash(cfg)}")
    assert moved == [(old, new)] and (new / "metrics.json").is_file()
    assert not link.is_symlink()  # the dangling link is gone; planning links it again
    # a default-valued argument does not change the hash (new options keep old runs valid)
    assert config_hash({**cfg, "model": {**cfg["model"], "attention": "dense"}}) == config_hash(cfg)


def test_bad_selections_are_one_line_and_a_failed_multirun_fails_its_rows(
    tmp_path, monkeypatch, capsys
):
    """--launcher/--logger that do not exist, --rows/--seeds that match nothing and a file as
    --results stop before anything runs; a multirun that dies before its jobs finish marks
    them failed (exit 1) instead of leaving them silently missing."""
    import sys

    from liftpose.tables.run import main

    tiny_spec(tmp_path, ROWS)
    base = ["--experiments", str(tmp_path / "exp"), "--results", str(tmp_path / "results")]
    for extra, said in (
        (["--launcher", "nope"], "--launcher nope: no such option (basic,"),
        (["--logger", "nope"], "--logger nope: no such option ("),
        (["--rows", "zzz"], "--rows zzz: matches no row of the selected tables"),
        (["--seeds", "7"], "--seeds [7]: none is a seed of the selected tables at smoke"),
    ):
        assert main(base + extra) == 2
        assert capsys.readouterr().err.startswith(f"liftpose-tables: error: {said}")
    (tmp_path / "file").write_text("mine")
    assert main(["--experiments", str(tmp_path / "exp"), "--results", str(tmp_path / "file")]) == 2
    assert "a file, not a folder" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
    monkeypatch.setattr(sys, "executable", "false")  # the multirun process dies at once
    assert main(base + ["--rows", "ok"]) == 1
    assert "failed rows: tiny/t1:ok" in capsys.readouterr().err
    log = next((tmp_path / "results").glob("tiny/t1/ok/seed0-*/error.log")).read_text()
    assert "the multirun stopped (exit 1) before this job finished" in log
