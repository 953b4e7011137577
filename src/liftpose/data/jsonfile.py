"""JSON files read against a schema: one :class:`~liftpose.errors.DataError` naming the field.

The schemas are ``TypedDict`` classes (fields beyond them are kept) validated by pydantic in
strict JSON mode: an integer field takes no ``3.0`` nor ``"3"`` nor ``true``, ``NaN``/``Infinity``
are refused where a finite number is due, and malformed JSON or non-UTF-8 bytes are errors too::

    cameras_h36m.json: intrinsics.54138969.res_w: Input should be greater than 0 (got -1000)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from liftpose.errors import DataError

__all__ = ["FiniteFloat", "PositiveFloat", "field_name", "read_json"]

#: A finite float (JSON integers are accepted).
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: A finite float > 0.
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


@functools.cache
def _adapter(schema: Any) -> TypeAdapter:
    return TypeAdapter(schema)


def field_name(loc: tuple, top: str = "") -> str:
    """``("annotations", 3, "bbox")`` -> ``annotations[3].bbox`` (``top`` names the document
    root of a one-element location, e.g. ``<top level>.annotations``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    if top and len(loc) == 1 and not isinstance(loc[0], int):
        out = f"{top}.{out}"
    return out or (top or "json")


def read_json(path: str | Path, schema: Any, top: str = "") -> Any:
    """The document at ``path``, validated against ``schema`` (python objects; tuples where the
    schema says so).

    Raises:
        DataError: the file is missing or unreadable, not UTF-8 JSON, or a field is missing,
            of the wrong type, out of range or not finite (the first one found, by name).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file", "not found")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(path, "file", f"cannot read ({e})") from None
    try:
        return _adapter(schema).validate_json(raw, strict=True)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        if err["type"] == "json_invalid":
            raise DataError(path, "json", f"malformed JSON ({err['msg']})") from None
        field = field_name(tuple(err["loc"]), top)
        if err["type"] == "missing":
            raise DataError(path, field, "missing field") from None
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) else f" (got {str(got)[:40]!r})"
        raise DataError(path, field, f"{err['msg']}{shown}") from None
