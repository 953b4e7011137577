"""Nothing lost, nothing silent: unique run folders, protected user data, verified caches, checked
configs and overrides, progress in logs, mid-epoch resumes, portable checkpoints."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from hydra.core.global_hydra import GlobalHydra
from lightning.pytorch.callbacks import Callback
from omegaconf import open_dict

from liftpose.data.capture import capture
from liftpose.data.datamodule import LiftingDataModule
from liftpose.data.h36m import write_dataset
from liftpose.errors import ConfigError, DataError
from liftpose.eval import data_argument, eval_setup, run_eval
from liftpose.train import check_train_config, run_train
from liftpose.utils.run import CONF_DIR

from .conftest import synthetic_collection
from .test_configs import compose_cfg
from .test_train import tiny_cfg, tiny_overrides


class StopAt(Callback):
    """Raise before training step ``step`` (a run killed in the middle of an epoch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"stopped at step {self.step}")


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory) -> Path:
    """A 1-epoch tiny run laid out as a project: ``<a>/data/tiny``, ``<a>/.cache``, ``<a>/logs``.
    Returns ``<a>``; its checkpoint is ``<a>/logs/run/checkpoints/last.ckpt``."""
    a = tmp_path_factory.mktemp("project") / "a"
    shutil.copytree(tiny_root, a / "data" / "tiny", ignore=shutil.ignore_patterns("cache*"))
    cfg = tiny_cfg(
        tiny_root,
        a / "logs" / "run",
        ["trainer.max_epochs=1", "test=false", "data.train_stride=2", "logger=none"],
    )
    with open_dict(cfg):
        cfg.paths.root_dir = str(a)
        cfg.data.root = "${paths.data_dir}/tiny"
        cfg.data.cache_dir = "${paths.cache_dir}"
    run_train(cfg)
    return a


def eval_cfg(project: Path, out: Path, extra: list[str] | None = None):
    cfg = compose_cfg(
        "eval", [f"ckpt_path={project / 'logs/run/checkpoints/last.ckpt'}"] + (extra or [])
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)
        cfg.paths.root_dir = str(project)
    return cfg


# ----------------------------------------------------------------------- 1. unique run folders
FROZEN_CLOCK = textwrap.dedent(
    """
    import sys, datetime as _dt
    import hydra.core.utils as hydra_utils
    class _Frozen(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2001, 2, 3, 4, 5, 6)
    hydra_utils.datetime = _Frozen  # every run starts "in the same second"
    from liftpose.train import main
    sys.argv[0] = "liftpose-train"
    main()
    """
)


@pytest.mark.slow
def test_two_runs_started_in_the_same_second_get_a_folder_each(tiny_root, tmp_path):
    env = dict(os.environ, LIFTPOSE_ROOT=str(tmp_path), OMP_NUM_THREADS="1")
    common = [f"data.cache_dir={tmp_path / 'cache'}", "train=false", "logger=none"]
    common += [a for a in tiny_cfg_overrides(tiny_root) if not a.startswith("data.cache_dir")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FROZEN_CLOCK, f"seed={seed}", *common],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (0, 1)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    runs = sorted((tmp_path / "logs" / "train" / "runs").iterdir())
    assert [r.name for r in runs] == ["2001-02-03_04-05-06", "2001-02-03_04-05-06_2"]
    seeds = set()
    for run in runs:  # each folder holds one run's record: its metrics and its overrides agree
        seed = json.loads((run / "metrics.json").read_text())["seed"]
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        assert f"seed={seed}" in overrides
        seeds.add(seed)
    assert seeds == {0, 1}


def tiny_cfg_overrides(tiny_root: Path) -> list[str]:
    from .test_train import tiny_overrides

    return tiny_overrides(tiny_root, tiny_root / "unused")


# --------------------------------------------------------------- 2. users' data is not touched
def test_embedded_data_is_built_in_its_own_folder():
    cfg = compose_cfg("train")
    assert cfg.data.embedded and cfg.data.root.startswith(cfg.paths.cache_dir)


def test_embedded_build_never_writes_into_a_users_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    users = folder / "data_3d_hdm05.npz"
    np.savez(users, positions_3d=np.zeros(3))
    before = users.read_bytes()
    dm = LiftingDataModule(
        root=str(folder), name="hdm05", keypoints="det", train_subjects=["bd"],
        test_subjects=["dg"], embedded=True, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    with pytest.raises(DataError, match=r"data_3d_hdm05\.npz: file: .* liftpose did not write"):
        dm.prepare_data()
    assert users.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == [users.name]
    # other files of a user: refused as well, nothing written
    users.unlink()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"notes\.txt: file: data\.root=.* liftpose did not write"):
        dm.prepare_data()
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_datasets_never_replace_an_unmarked_file(tmp_path):
    coll = synthetic_collection(subjects=("A",), actions=("Walk 1",), frames=30)
    cams, pos2d = capture(coll)
    (tmp_path / "data_2d_x_gt.npz").write_bytes(b"a user's file")
    with pytest.raises(DataError, match=r"data_2d_x_gt\.npz: file: exists and was not written"):
        write_dataset(tmp_path, "x", coll, pos2d, cams)
    assert (tmp_path / "data_2d_x_gt.npz").read_bytes() == b"a user's file"
    assert not (tmp_path / "data_3d_x.npz").exists()  # nothing written before the refusal
    (tmp_path / "data_2d_x_gt.npz").unlink()
    write_dataset(tmp_path, "x", coll, pos2d, cams)
    write_dataset(tmp_path, "x", coll, pos2d, cams)  # its own files: rebuilt in place


def test_files_are_readable_as_the_umask_allows(tmp_path):
    from liftpose.utils.io import atomic_write_text

    old = os.umask(0o022)
    try:
        coll = synthetic_collection(subjects=("A",), actions=("Walk 1",), frames=30)
        cams, pos2d = capture(coll)
        written = write_dataset(tmp_path, "x", coll, pos2d, cams)
        atomic_write_text(tmp_path / "metrics.json", "{}")
        dm = LiftingDataModule(
            root=str(tmp_path), name="x", keypoints="gt", train_subjects=["A"],
            test_subjects=["A"], receptive_field=3, cache_dir=str(tmp_path / "cache"),
        )  # fmt: skip
        dm.prepare_data()
        for p in [*written.values(), tmp_path / "metrics.json", dm.cache_path]:
            assert p.stat().st_mode & 0o777 == 0o644, p
    finally:
        os.umask(old)


# ------------------------------------------------------------------------ 3. verified caches
def test_damaged_cache_is_detected_and_rebuilt(tiny_root, tmp_path, capsys):
    args = dict(
        root=str(tiny_root), name="tiny", keypoints="gt", train_subjects=["A", "B"],
        test_subjects=["C"], receptive_field=9, cache_dir=str(tmp_path),
    )  # fmt: skip
    dm = LiftingDataModule(**args)
    dm.setup()
    reference = dm.splits["train"].pose_2d.copy()
    with h5py.File(dm.cache_path, "r") as f:
        offset = f["train/pose_2d"].id.get_offset()
    with open(dm.cache_path, "r+b") as f:  # random bytes inside the array, as a disk fault
        f.seek(offset + 4096)
        f.write(np.random.default_rng(0).bytes(256))
    capsys.readouterr()
    again = LiftingDataModule(**args)
    again.setup()
    out = capsys.readouterr().out
    assert "does not match its stored hash (damaged); rebuilding the cache" in out
    assert len(out.strip().splitlines()) == 1
    np.testing.assert_array_equal(again.splits["train"].pose_2d, reference)
    assert again.data_fingerprint() == dm.data_fingerprint()


# --------------------------------------------------------------- 4. configs and eval overrides
def _hydra_main(module: str, argv: list[str], monkeypatch, root: Path) -> int:
    """Run an entry point's Hydra main in this process; its exit status."""
    import importlib

    monkeypatch.setenv("LIFTPOSE_ROOT", str(root))
    monkeypatch.setattr(sys, "argv", [f"liftpose-{module}", *argv])
    GlobalHydra.instance().clear()
    try:
        importlib.import_module(f"liftpose.{module}").main()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        GlobalHydra.instance().clear()
    return 0


@pytest.mark.parametrize(
    "arg,key",
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc': Input should be a valid integer"),
        ("model.depth=two", "model.depth='two': Input should be a valid integer"),
        ("data.batch_size=0", "data.batch_size=0: Input should be greater than or equal to 1"),
        ("+model.dept=2", "model.dept: not a parameter of liftpose.models.poseformer.PoseFormer"),
    ],
)
def test_bad_config_values_stop_before_the_run_folder(arg, key, tmp_path, monkeypatch, capsys):
    assert _hydra_main("train", [arg], monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    if arg.startswith("+model."):  # the keys an experiment sets for its model: say so
        hint = "choose its experiment (e.g. experiment=videopose3d_cpu) or drop it with ~experiment"
        assert err.endswith(hint), err
    assert err == f"liftpose-train: error: {key}" or (
        err.startswith("liftpose-train: error: " + key)
    )
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "args,key",
    [
        (
            ["model.dropout=1.5"],
            "model.dropout: no such key in the config; add it with +model.dropout=1.5",
        ),
        (
            ["trainer.limit_train_batches=abc"],
            "trainer.limit_train_batches: no such key in the config; add it with "
            "+trainer.limit_train_batches=abc",
        ),
        (["model.depth=[1"], "model.depth=[1: not a valid override (no viable alternative"),
        (["data=nonexist"], "data=nonexist: no such data option (coco, embedded,"),
        (["+frames=3"], "+frames=3: Could not append to config. An item is already at 'frames'"),
        (
            ["-m", "model.nope=1,2"],
            "model.nope: no such key in the config; add it with +model.nope=1,2",
        ),
        (["-m", "seed=0,1", "model=a,b"], "model=a,b: no such model option (ampose,"),
        (
            ["experiment=null"],
            "experiment=null: a config group takes one of its options; ~experiment drops it",
        ),
    ],
)
def test_override_errors_are_one_line_before_the_run_folder(
    args, key, tmp_path, monkeypatch, capsys
):
    assert _hydra_main("train", args, monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"liftpose-train: error: {key}"), err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "logs").exists()


def test_eval_without_a_checkpoint_is_one_line_before_the_run_folder(tmp_path, monkeypatch, capsys):
    assert _hydra_main("eval", [], monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err == "liftpose-eval: error: ckpt_path: required, give ckpt_path=...", err
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "args,refused",
    [
        (["model.depth=3"], "model.spatial_blocks.1."),
        (["model.embed_dim_ratio=16"], "shape of model."),
    ],
)
def test_resuming_a_checkpoint_of_another_network_stops_before_the_run_folder(
    trained, tiny_root, args, refused, tmp_path, monkeypatch, capsys
):
    ckpt = trained / "logs" / "run" / "checkpoints" / "last.ckpt"
    argv = [f"ckpt_path={ckpt}", *tiny_overrides(tiny_root, tmp_path / "cache"), "logger=none"]
    assert _hydra_main("train", argv + args, monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"liftpose-train: error: {ckpt}: state_dict: does not fit"), err
    assert refused in err and len(err.splitlines()) == 1
    assert not (tmp_path / "logs").exists()
    # the network the checkpoint was trained with passes the check
    check_train_config(tiny_cfg(tiny_root, tmp_path / "run", [f"ckpt_path={ckpt}"]))


@pytest.mark.parametrize("arg", ["+frames=81", "frames=81", "+model.depth=2"])
def test_eval_refuses_keys_of_the_training_config_by_name(
    trained, arg, tmp_path, monkeypatch, capsys
):
    ckpt = trained / "logs" / "run" / "checkpoints" / "last.ckpt"
    assert _hydra_main("eval", [f"ckpt_path={ckpt}", arg], monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    key = arg.lstrip("+").split("=")[0]
    assert err.startswith(f"liftpose-eval: error: {key}: not a liftpose-eval setting"), err
    assert f"+override.{arg.lstrip('+')}" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "logs").exists()


def test_truncated_checkpoint_is_one_line_at_eval(trained, tmp_path, monkeypatch, capsys):
    ckpt = trained / "logs" / "run" / "checkpoints" / "last.ckpt"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    assert _hydra_main("eval", [f"ckpt_path={cut}"], monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"liftpose-eval: error: {cut}: file: unreadable or truncated checkpoint")
    assert len(err.splitlines()) == 1 and not (tmp_path / "logs").exists()


def test_damaged_checkpoint_weights_are_detected(trained, tmp_path):
    from liftpose.utils.checkpoint import load_run_checkpoint

    ckpt = torch.load(trained / "logs" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    key = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and v.numel())
    ckpt["state_dict"][key].view(-1)[0] = 3e37  # one damaged number, still finite
    torch.save(ckpt, tmp_path / "damaged.ckpt")
    with pytest.raises(DataError, match=r"damaged\.ckpt: state_dict: .*differ from the hash"):
        load_run_checkpoint(tmp_path / "damaged.ckpt")


@pytest.mark.parametrize(
    "override,refused",
    [
        ("+override.frames=81", r"override\.frames=81 would change the network .*frames=9"),
        ("+override.model.depth=3", r"override\.model\.depth=3 would change the network"),
        ("+override.data.receptive_field=27", r"override\.data\.receptive_field=27 would change"),
        ("+override.trainer.max_epochs=3", r"override\.trainer\.max_epochs=3 is not an evaluation"),
    ],
)
def test_eval_refuses_overrides_that_change_the_network(trained, tmp_path, override, refused):
    with pytest.raises(ConfigError, match=refused):
        eval_setup(eval_cfg(trained, tmp_path, [override]))


def test_eval_accepts_an_override_equal_to_the_trained_value(trained, tmp_path):
    """Repeating the checkpoint's own architecture values changes nothing: not refused."""
    cfg = eval_cfg(trained, tmp_path, ["+override.frames=9", "+override.data.receptive_field=9"])
    eval_setup(cfg)


def test_eval_applies_and_records_data_stride_and_flip(trained, tmp_path):
    doc = run_eval(
        eval_cfg(
            trained,
            tmp_path / "e",
            ["+override.data.test_stride=3", "+override.module.test_flip=false"],
        )
    )
    assert doc["config"]["data"]["test_stride"] == 3
    assert doc["config"]["module"]["test_flip"] is False
    assert doc["eval"]["override"] == {"data.test_stride": 3, "module.test_flip": False}
    # a strided test scores consecutive pairs: MPJVE is defined
    assert np.isfinite(doc["metrics"]["test/mpjve"]) and doc["metrics"]["test/mpjve"] > 0
    full = run_eval(eval_cfg(trained, tmp_path / "f"))
    assert doc["metrics"]["test/mpjpe"] != pytest.approx(full["metrics"]["test/mpjpe"], rel=1e-6)


def test_eval_may_make_left_and_right_bones_equal(trained, tmp_path):
    _, cfg, record = eval_setup(
        eval_cfg(trained, tmp_path, ["+override.module.symmetric_bones=true"])
    )
    assert cfg.module.symmetric_bones is True
    assert record["override"] == {"module.symmetric_bones": True}


# ------------------------------------------------------ 6. another dataset with one override
def test_eval_on_a_dataset_folder_without_the_training_subjects(trained, tmp_path):
    folder = tmp_path / "captured"
    coll = synthetic_collection(subjects=("X", "Y"), actions=("Jump 1", "Walk 1"), frames=60)
    cams, pos2d = capture(coll)
    write_dataset(folder, "captured", coll, pos2d, cams)
    options = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
    argv = data_argument(["ckpt_path=x.ckpt", f"data={folder}", "data=h36m"], options)
    assert argv == ["ckpt_path=x.ckpt", f"data_root={folder}", "data=h36m"]
    doc = run_eval(eval_cfg(trained, tmp_path / "e", [f"data_root={folder}"]))
    data = doc["config"]["data"]
    assert data["root"] == str(folder) and data["name"] == "captured"
    assert data["test_subjects"] == ["X", "Y"] and data["train_subjects"] == []
    assert data["keypoints"] == "gt" and data["receptive_field"] == 9  # from the checkpoint
    assert {"test/mpjpe/action/Jump", "test/mpjpe/action/Walk"} <= set(doc["metrics"])
    assert doc["eval"]["data"] == str(folder)
    with pytest.raises(DataError, match=r"data: neither a folder nor a data option \(options: "):
        run_eval(eval_cfg(trained, tmp_path / "e2", [f"data_root={tmp_path / 'nosuch'}"]))


def test_eval_with_a_data_config_option(trained, tmp_path):
    folder = tmp_path / "h36m"
    coll = synthetic_collection(subjects=("S9", "S11"), actions=("Walking 1",), frames=50)
    cams, pos2d = capture(coll)
    write_dataset(folder, "h36m", coll, pos2d, cams)
    doc = run_eval(
        eval_cfg(
            trained,
            tmp_path / "e",
            ["data=h36m", f"+override.data.root={folder}", "+override.data.keypoints=gt"],
        )
    )
    assert doc["config"]["data"]["test_subjects"] == ["S9", "S11"]
    assert doc["config"]["data"]["train_subjects"] == []  # S1..S8 are not needed
    assert np.isfinite(doc["metrics"]["test/mpjpe"])


# ------------------------------------------------------- 7. checkpoints that move, DDP logging
def test_checkpoint_paths_follow_the_run_paths(trained, tmp_path):
    ckpt = torch.load(trained / "logs/run/checkpoints/last.ckpt", weights_only=False)
    config = ckpt["liftpose_config"]
    assert config["data"]["root"] == "${paths.data_dir}/tiny"
    assert config["data"]["cache_dir"] == "${paths.cache_dir}"
    leaked = [
        k for k, v in _leaves({k: v for k, v in config.items() if k != "paths"})
        if isinstance(v, str) and str(trained) in v
    ]  # fmt: skip
    assert not leaked
    assert ckpt["datamodule_hyper_parameters"]["root"] == "data/tiny"
    # the project moved: evaluation reads the data where its own paths.root_dir points
    moved = tmp_path / "b"
    shutil.copytree(trained, moved)
    hidden = trained.with_name("a-hidden")
    trained.rename(hidden)
    try:
        cfg = eval_cfg(moved, tmp_path / "e")
        doc = run_eval(cfg)
    finally:
        hidden.rename(trained)
    assert doc["config"]["data"]["root"] == str(moved / "data" / "tiny")
    assert np.isfinite(doc["metrics"]["test/mpjpe"])


def _leaves(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), d


def test_bench_strided_frames_flag_alone_skips_the_comparison(capsys):
    from liftpose.bench import main

    main(["--skip-data", "--skip-model", "--skip-render", "--strided-frames"])
    assert "torch" in capsys.readouterr().out


# ----------------------------------------------------------------------- 5. progress and resume
def test_progress_lines_when_the_output_is_not_a_terminal(tiny_root, tmp_path, capsys):
    cfg = tiny_cfg(
        tiny_root,
        tmp_path / "run",
        ["trainer.max_epochs=1", "test=false", "callbacks.log_progress.every_n_steps=10"],
    )
    run_train(cfg)
    lines = capsys.readouterr().out.splitlines()
    steps = [ln for ln in lines if ln.startswith("epoch 1/1 batch ")]
    assert len(steps) >= 3, lines
    pattern = (
        r"epoch 1/1 batch \d+/\d+ step \d+/\d+ \| train/loss [\d.e-]+ \| [\d.e+]+ it/s \| eta "
    )

    assert all(re.match(pattern, ln) for ln in steps[1:]), steps
    assert any(ln.startswith("epoch 1/1 validated in ") and "val/mpjpe" in ln for ln in lines)
    assert any(ln.startswith("training done: ") for ln in lines)


def test_progress_lines_stay_off_on_a_terminal(monkeypatch):
    from liftpose.utils.progress import LogProgress

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert not LogProgress().enabled and LogProgress(when="always").enabled
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert LogProgress().enabled and not LogProgress(when="never").enabled


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_bit_identically(tiny_root, tmp_path):
    common = ["trainer.max_epochs=2", "test=false", "data.train_stride=2", "logger=none"]
    timed = ["callbacks.time_checkpoint.every_minutes=1e-7"]  # a save after every step
    stop = [f"+callbacks.stop={{_target_: {__name__}.StopAt, step: 50}}"]
    with pytest.raises(RuntimeError, match="stopped at step 50"):
        run_train(tiny_cfg(tiny_root, tmp_path / "killed", common + timed + stop))
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    assert saved["global_step"] == 50 and saved["epoch"] == 1  # in the middle of epoch 2
    run_train(tiny_cfg(tiny_root, tmp_path / "resumed", [*common, f"ckpt_path={last}"]))
    run_train(tiny_cfg(tiny_root, tmp_path / "straight", common))
    a = torch.load(tmp_path / "resumed/checkpoints/last.ckpt", weights_only=False)
    b = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] > 50
    for k, v in b["state_dict"].items():
        torch.testing.assert_close(a["state_dict"][k], v, rtol=0, atol=0, msg=k)
    for sa, sb in zip(a["optimizer_states"][0]["state"].values(),
                      b["optimizer_states"][0]["state"].values()):  # fmt: skip
        torch.testing.assert_close(sa["exp_avg"], sb["exp_avg"], rtol=0, atol=0)


def test_a_folder_an_earlier_run_wrote_is_refused_as_the_run_folder(
    trained, tiny_root, tmp_path, monkeypatch, capsys
):
    """hydra.run.dir naming an earlier run's folder: one line, exit 2, the folder untouched;
    resuming that run in its own folder passes the check."""
    from liftpose.utils.config_check import earlier_run_folder

    run = trained / "logs" / "run"
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    argv = [f"hydra.run.dir={run}", *tiny_overrides(tiny_root, tmp_path / "cache"), "logger=none"]
    assert _hydra_main("train", argv, monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"liftpose-train: error: hydra.run.dir={run}: holds an earlier run")
    assert len(err.splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before
    assert _hydra_main("eval", [f"ckpt_path={run}/checkpoints/last.ckpt", f"hydra.run.dir={run}"],
                       monkeypatch, tmp_path) == 2  # fmt: skip
    assert "holds an earlier run" in capsys.readouterr().err
    resume = [f"hydra.run.dir={run}", f"ckpt_path={run}/checkpoints/last.ckpt"]
    assert earlier_run_folder(resume) is None
    assert earlier_run_folder(resume, resume_ok=False) is not None
    assert earlier_run_folder([f"hydra.run.dir={tmp_path / 'new'}"]) is None


def test_a_multirun_makes_one_folder_however_often_it_is_resolved(tmp_path, monkeypatch):
    """hydra.sweep.dir is resolved again per job (and in each submitit job's own process, with
    another time stamp): one folder per multirun all the same."""
    import json
    import os

    from liftpose.utils.run import SWEEP_DIR_ENV, unique_sweep_dir

    monkeypatch.delenv(SWEEP_DIR_ENV, raising=False)
    first = unique_sweep_dir(str(tmp_path / "12-00-00"))
    assert unique_sweep_dir(str(tmp_path / "12-00-00")) == first  # the same multirun
    # a job's process inherits the record: another time stamp, the same folder
    monkeypatch.setenv(SWEEP_DIR_ENV, json.dumps([os.getpid() + 1, "x", first]))
    assert unique_sweep_dir(str(tmp_path / "12-00-07")) == first
    # this process's next multirun (another base) gets a folder of its own
    monkeypatch.setenv(SWEEP_DIR_ENV, json.dumps([os.getpid(), str(tmp_path / "12-00-00"), first]))
    assert unique_sweep_dir(str(tmp_path / "12-00-09")) == str(tmp_path / "12-00-09")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["12-00-00", "12-00-09"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without GPUs")
def test_a_trainer_lightning_refuses_is_one_line(tiny_root, tmp_path, monkeypatch, capsys):
    """trainer=ddp on a machine without GPUs: Lightning's refusal in one line, exit 2."""
    argv = ["trainer=ddp", *tiny_overrides(tiny_root, tmp_path / "cache"), "logger=none"]
    assert _hydra_main("train", argv, monkeypatch, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err == "liftpose-train: error: trainer: No supported gpu backend found! (see " \
                  "conf/trainer/)", err  # fmt: skip
    assert not list((tmp_path / "logs").rglob("*.*"))  # the run folder is gone again
