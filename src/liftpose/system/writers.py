"""Outputs in ``--out``: written to temporary names and renamed, never over a file liftpose did
not write, never shared by two runs.

The output folder rule: ``--out`` must not exist or be empty; liftpose then claims it (a
``.liftpose-infer.json`` marker naming the run, made with an exclusive create so two runs
cannot claim the same folder). A folder liftpose made before is refused too unless
``--force``; with it, only the files of the earlier run (listed in its marker) are replaced.
Any other non-empty folder is refused. A run that fails or is interrupted leaves no partial
file (each file is a temporary name until it is complete) and removes a folder it created.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from liftpose.errors import DataError
from liftpose.utils.io import atomic_path

MARKER = ".liftpose-infer.json"


class OutputFolder:
    """The claimed ``--out`` folder (see the module docstring); use as a context manager.

    ``path(name)`` gives a temporary file for ``name`` that :meth:`commit` renames; on an
    exception every temporary file is removed (and the folder, if this run created it).
    """

    def __init__(self, root: str | Path, force: bool = False) -> None:
        self.root = Path(root)
        self.force = force
        self.created = False
        self.written: list[str] = []
        self._pending: dict[str, Path] = {}
        self._previous: list[str] = []
        check_output_folder(self.root, force)

    def __enter__(self) -> OutputFolder:
        if not self.root.exists():
            self.root.mkdir(parents=True)
            self.created = True
        marker = self.root / MARKER
        if marker.exists():  # --force on a folder of an earlier run
            self._previous = list(json.loads(marker.read_text()).get("files", []))
            marker.unlink()
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise DataError(self.root, "--out", "claimed by another liftpose-infer run") from None
        with os.fdopen(fd, "w") as f:
            json.dump({"started": _dt.datetime.now().isoformat(), "pid": os.getpid()}, f)
        return self

    def path(self, name: str) -> Path:
        """A temporary path in the folder for the output file ``name``."""
        final = self.root / name
        if final.exists() and name not in self._previous and name != MARKER:
            raise DataError(final, "--out", "exists and was not written by liftpose")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}{final.suffix}")
        self._pending[name] = tmp
        return tmp

    def commit(self, name: str) -> Path:
        """Rename the temporary file of ``name`` onto its final name."""
        tmp = self._pending.pop(name)
        final = self.root / name
        os.replace(tmp, final)
        self.written.append(name)
        return final

    def __exit__(self, exc_type, exc, tb) -> None:
        for tmp in self._pending.values():
            if tmp.exists():
                tmp.unlink()
        self._pending.clear()
        marker = self.root / MARKER
        if exc_type is not None and self.created:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        if exc_type is not None:
            if marker.exists() and not self.written:
                marker.unlink()
            return
        with atomic_path(marker) as tmp:
            tmp.write_text(
                json.dumps(
                    {"finished": _dt.datetime.now().isoformat(), "files": sorted(self.written)},
                    indent=1,
                )
            )


def check_output_folder(root: Path, force: bool) -> None:
    """``DataError`` unless ``root`` may be written (see the module docstring); no side effect."""
    if root.exists() and not root.is_dir():
        raise DataError(root, "--out", "exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise DataError(root, "--out", "exists, is not empty and was not made by liftpose")
        if not force:
            raise DataError(
                root, "--out", "holds an earlier liftpose-infer run (choose another --out, or "
                "--force to replace its files)"
            )  # fmt: skip


def write_json(out: OutputFolder, name: str, doc: Any) -> Path:
    tmp = out.path(name)
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False))
    return out.commit(name)


def write_npz(out: OutputFolder, name: str, arrays: dict[str, np.ndarray]) -> Path:
    tmp = out.path(name)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return out.commit(name)


def write_png(out: OutputFolder, name: str, rgb: np.ndarray) -> Path:
    import imageio.v3 as iio

    tmp = out.path(name)
    iio.imwrite(tmp, rgb, extension=".png")
    return out.commit(name)


class VideoWriter:
    """An H.264 ``.mp4`` (imageio-ffmpeg's own ffmpeg) or a ``.gif`` in the output folder,
    written frame by frame to a temporary name and renamed by :meth:`close`."""

    def __init__(self, out: OutputFolder, name: str, fps: float) -> None:
        import imageio.v2 as imageio

        self.out, self.name, self.frames = out, name, 0
        tmp = out.path(name)
        if name.endswith(".gif"):
            self._w = imageio.get_writer(tmp, mode="I", duration=1000.0 / fps, loop=0)
        else:
            self._w = imageio.get_writer(
                tmp, fps=fps, codec="libx264", quality=7, macro_block_size=2,
                pixelformat="yuv420p", ffmpeg_log_level="error",
            )  # fmt: skip

    def append(self, rgb: np.ndarray) -> None:
        self._w.append_data(rgb)
        self.frames += 1

    def close(self) -> Path:
        self._w.close()
        return self.out.commit(self.name)
