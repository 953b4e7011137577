"""Errors for bad input and bad configuration: clear one-line messages, no traceback needed."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Raised for malformed or missing input data.

    The message always starts with ``<file>: <field>:`` so that a researcher sees at once which
    file and which entry (key, subject, camera, array) is at fault.
    """

    def __init__(self, path: str | Path | None, field: str, message: str) -> None:
        self.path = None if path is None else str(path)
        self.field = " ".join(str(field).split())
        where = self.path if self.path is not None else "<in-memory>"
        # one line, whatever the message quotes (a library's multi-line error, say)
        super().__init__(f"{where}: {self.field}: {' '.join(str(message).split())}")


class ConfigError(ValueError):
    """Raised when settings contradict each other; the message names the config keys."""
