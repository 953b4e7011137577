# No `from __future__ import annotations` here: Hydra loads plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.
"""``hydra/sweeper=rows``: a multirun over an explicit list of override sets.

Hydra's basic sweeper runs the cartesian product of comma-separated values. A paper table is
not a product: each row is its own set of overrides (``model=mixste frames=81``, ``model=poseformer
frames=27``, ...). This sweeper reads the rows from a JSON file (written by ``liftpose-tables``)::

    {"jobs": [{"overrides": ["frames=27", "seed=0", "+table.dir=r0/s0"]}, ...]}

and hands them to the configured launcher as one batch (or batches of ``max_batch_size``), so the
basic, joblib and submitit launchers all run a table the same way. Overrides given on the command
line come first and may themselves be sweeps (their product is crossed with the rows); a row's
own overrides are applied after them and win.

Unlike the basic sweeper, a failing job does not stop the others: every batch is launched, and
the failures are listed (and raised) once all of them are done.
"""

import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class RowsSweeperConf:
    _target_: str = "hydra_plugins.liftpose_rows_sweeper.rows_sweeper.RowsSweeper"
    jobs_file: Optional[str] = None  # noqa: UP045 - OmegaConf needs typing.Optional
    max_batch_size: Optional[int] = None  # noqa: UP045


ConfigStore.instance().store(
    group="hydra/sweeper", name="rows", node=RowsSweeperConf, provider="liftpose"
)


def read_jobs(path: str | Path) -> list[list[str]]:
    """The override lists of a jobs file (see the module docstring)."""
    doc = json.loads(Path(path).read_text())
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, list) or not all(
        isinstance(j, dict) and isinstance(j.get("overrides"), list) for j in jobs
    ):
        raise HydraException(f"{path}: jobs: expected {{'jobs': [{{'overrides': [...]}}, ...]}}")
    return [[str(o) for o in j["overrides"]] for j in jobs]


class RowsSweeper(Sweeper):
    def __init__(self, jobs_file: str | None = None, max_batch_size: int | None = None) -> None:
        super().__init__()
        self.jobs_file = jobs_file
        self.max_batch_size = max_batch_size
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def job_overrides(self, arguments: list[str]) -> list[list[str]]:
        """Every job's overrides: each combination of the command line times each row."""
        if not self.jobs_file:
            raise HydraException("hydra/sweeper=rows needs hydra.sweeper.jobs_file=<json>")
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        combos = BasicSweeper.split_arguments(parser.parse_overrides(arguments), None)[0]
        return [list(c) + row for row in read_jobs(self.jobs_file) for c in combos]

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        jobs = self.job_overrides(arguments)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size or max(len(jobs), 1)
        returns: list[list[JobReturn]] = []
        failed: list[str] = []
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            self.validate_batch_is_legal(batch)
            results = list(self.launcher.launch(batch, initial_job_idx=start))
            returns.append(results)
            for r in results:
                if r.status == JobStatus.FAILED:
                    where = r.hydra_cfg.hydra.runtime.output_dir if r.hydra_cfg else "?"
                    failed.append(f"{where}: {r._return_value!r}")
        log.info(f"rows sweeper: {len(jobs) - len(failed)} of {len(jobs)} jobs succeeded")
        if failed:
            raise HydraException(
                f"{len(failed)} of {len(jobs)} jobs failed:\n"
                + "\n".join(itertools.islice(failed, 20))
            )
        return returns
