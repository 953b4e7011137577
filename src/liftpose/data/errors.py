"""Data errors (defined in :mod:`liftpose.errors`)."""

from liftpose.errors import ConfigError, DataError

__all__ = ["ConfigError", "DataError"]
