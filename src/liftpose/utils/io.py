"""Safe file writes: atomic (a killed process never leaves a half-written file behind), readable
as the umask allows, and never over a file that liftpose did not write.

Every data file liftpose writes carries a **marker** naming its writer, so that a later write can
tell its own output from a user's file of the same name:

* ``.npz``: an entry ``liftpose`` (a JSON string, no pickle);
* ``.json``: a top-level ``"format"`` starting with ``liftpose`` (``liftpose-cameras/1``) or a
  ``"liftpose"`` entry;
* ``.h5``: a file attribute ``liftpose``.

:func:`check_overwrite` refuses (:class:`~liftpose.errors.DataError`) to replace an existing file
without one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from liftpose.errors import DataError

#: Name of the marker entry (npz), field (json) or attribute (HDF5).
MARKER_KEY = "liftpose"


def current_umask() -> int:
    """The process umask (read without changing it where ``/proc`` allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The file gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the
    umask), not the private ``0o600`` of a temporary file. On an exception the temporary file is
    removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_sha1(path: str | Path) -> str:
    """The SHA-1 of a file's bytes (hex), read in 1 MiB blocks: what a manifest of written
    files stores to tell later whether a file is still as liftpose wrote it."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def marker(kind: str, **extra: object) -> str:
    """The marker of a file liftpose writes: a JSON string naming the writer and the kind of
    file (``"dataset-3d"``, ``"dataset-2d"``, ``"3dhp-test"``...)."""
    from liftpose import __version__

    return json.dumps({"writer": "liftpose", "version": __version__, "kind": kind, **extra})


def has_marker(path: str | Path) -> bool:
    """Whether ``path`` carries a liftpose marker (False for an unreadable file)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            import zipfile

            with zipfile.ZipFile(path) as z:  # the entry list only: nothing is unpickled
                return f"{MARKER_KEY}.npy" in z.namelist()
        if suffix == ".json":
            doc = json.loads(path.read_text())
            return isinstance(doc, dict) and (
                MARKER_KEY in doc or str(doc.get("format", "")).startswith(MARKER_KEY)
            )
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as f:
                return MARKER_KEY in f.attrs
    except Exception:  # unreadable: not provably ours
        return False
    return False


def check_overwrite(path: str | Path, hint: str = "") -> None:
    """Raise :class:`~liftpose.errors.DataError` if ``path`` exists without a liftpose marker.

    ``hint`` (optional) says what to do instead; the default suggests moving the file or
    choosing another folder.
    """
    path = Path(path)
    if path.exists() and not has_marker(path):
        raise DataError(
            path,
            "file",
            "exists and was not written by liftpose (no liftpose marker); refusing to overwrite "
            "it: " + (hint or "move it away or choose another output folder"),
        )
