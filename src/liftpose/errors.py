"""Errors for bad input and bad configuration: clear one-line messages, no traceback needed."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Raised for malformed or missing input data.

    The message always starts with ``<file>: <field>:`` so that a researcher sees at once which
    file and which entry (key, subject, camera, array) is at fault. Without a file, a
    command-line option (a field starting with ``--``) stands alone (``--detector: ...``) and
    any other field is marked ``<in-memory>`` (an array passed by a caller).
    """

    def __init__(self, path: str | Path | None, field: str, message: str) -> None:
        self.path = None if path is None else str(path)
        self.field = " ".join(str(field).split())
        text = " ".join(str(message).split())  # one line, whatever a library's error quotes
        if self.path is None and self.field.startswith("--"):
            super().__init__(f"{self.field}: {text}")
        else:
            where = self.path if self.path is not None else "<in-memory>"
            super().__init__(f"{where}: {self.field}: {text}")


class ConfigError(ValueError):
    """Raised when settings contradict each other; the message names the config keys."""
