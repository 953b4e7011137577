"""Paper tables: specs in ``experiments/``, a runner (``liftpose-tables``) and a renderer."""

from liftpose.tables.spec import Column, Row, Scale, TableSpec, find_specs, load_spec

__all__ = ["Column", "Row", "Scale", "TableSpec", "find_specs", "load_spec"]
