"""Outputs in ``--out``: written to temporary names and renamed, never over a file liftpose did
not write, never shared by two runs.

The output folder rule: ``--out`` must not exist or be empty; liftpose then claims it (a
``.liftpose-infer.json`` marker naming the run, made with an exclusive create so two runs
cannot claim the same folder). A folder liftpose made before is refused too unless
``--force``. The marker lists every file a run wrote with its SHA-1; with ``--force`` those
files are replaced, and those the new run does not write are removed, but only while they
are as liftpose wrote them: a listed file changed since (edited by its user) is refused
before anything is written. Any other non-empty folder is refused. A run that fails or is
interrupted leaves no partial file (each file is a temporary name until it is complete) and
removes a folder it created.
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
from liftpose.utils.io import atomic_path, file_sha1

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
        self._hashes: dict[str, str] = {}  # name -> SHA-1 of what this run wrote
        self._pending: dict[str, Path] = {}
        self._previous: dict[str, str] = {}  # the earlier run's files (--force)
        check_output_folder(self.root, force)

    @property
    def written(self) -> list[str]:
        """The files this run wrote, in order."""
        return list(self._hashes)

    def __enter__(self) -> OutputFolder:
        if not self.root.exists():
            self.root.mkdir(parents=True)
            self.created = True
        marker = self.root / MARKER
        if marker.exists():  # --force on a folder of an earlier run (checked unchanged)
            self._previous = previous_files(self.root)
            marker.unlink()
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise DataError(self.root, "--out", "claimed by another liftpose-infer run") from None
        with os.fdopen(fd, "w") as f:  # the earlier files stay listed until this run ends
            json.dump({"started": _dt.datetime.now().isoformat(), "pid": os.getpid(),
                       "files": self._previous}, f)  # fmt: skip
        return self

    def _unchanged(self, name: str) -> bool:
        path = self.root / name
        return name in self._previous and file_sha1(path) == self._previous[name]

    def path(self, name: str) -> Path:
        """A temporary path in the folder for the output file ``name``."""
        final = self.root / name
        if final.exists() and name != MARKER and not self._unchanged(name):
            why = "was changed since" if name in self._previous else "was not written by"
            raise DataError(final, "--out", f"exists and {why} liftpose")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}{final.suffix}")
        self._pending[name] = tmp
        return tmp

    def commit(self, name: str) -> Path:
        """Rename the temporary file of ``name`` onto its final name."""
        tmp = self._pending.pop(name)
        final = self.root / name
        os.replace(tmp, final)
        self._hashes[name] = file_sha1(final)
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
        files = dict(self._hashes)
        for name, sha in self._previous.items():
            path = self.root / name
            if name in files or not path.is_file() or file_sha1(path) != sha:
                continue  # rewritten, gone, or changed meanwhile (then no longer liftpose's)
            if exc_type is not None:
                files[name] = sha  # a failed run keeps the earlier run's files, still listed
                continue
            path.unlink()  # a file of the earlier run that this run does not write
            for parent in path.parents:  # and the folders that held only such files
                if parent == self.root or any(parent.iterdir()):
                    break
                parent.rmdir()
        if exc_type is not None and not files:
            marker.unlink(missing_ok=True)
            return
        doc = {"finished": _dt.datetime.now().isoformat(), "files": dict(sorted(files.items()))}
        if exc_type is not None:
            doc = {"failed": _dt.datetime.now().isoformat(), "files": doc["files"]}
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps(doc, indent=1))


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
        for name, sha in previous_files(root).items():
            path = root / name
            if path.is_file() and file_sha1(path) != sha:
                raise DataError(
                    path, "--force", "was changed since liftpose-infer wrote it; move it away "
                    "or choose another --out"
                )  # fmt: skip


def previous_files(root: Path) -> dict[str, str]:
    """The files the marker in ``root`` lists, with their SHA-1; ``DataError`` for a marker
    that cannot be read or lists files without a checksum or outside ``root``."""
    marker = root / MARKER
    try:
        doc = json.loads(marker.read_text())
    except (OSError, ValueError) as e:
        raise DataError(marker, "files", f"unreadable ({e}); move the folder away") from None
    files = doc.get("files", {}) if isinstance(doc, dict) else None
    if isinstance(files, list) and files:
        raise DataError(
            marker, "files", "no checksums (an older liftpose-infer run): move the folder away "
            "or choose another --out"
        )  # fmt: skip
    files = files or {}
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _inside(root, k) for k, v in files.items()
    ):
        raise DataError(marker, "files", "not a map of file names in the folder to their SHA-1")
    return files


def _inside(root: Path, name: str) -> bool:
    p = Path(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts and name != MARKER


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
