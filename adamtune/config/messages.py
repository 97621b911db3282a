"""Pydantic's validation errors as one readable line each: file, line, dotted key path,
what was expected and what arrived."""

from __future__ import annotations

import difflib
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from adamtune.config.yamlfile import YamlDoc, dotted

_TYPE_WORDS = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
}


def _model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the keys at ``loc``, to suggest near-miss spellings."""
    model = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        found = [
            a
            for a in [field.annotation, *typing.get_args(field.annotation)]
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        inner = [
            b
            for a in typing.get_args(field.annotation)
            for b in typing.get_args(a)
            if isinstance(b, type) and issubclass(b, BaseModel)
        ]
        if not found and not inner:
            return None
        model = (found or inner)[0]
    return model


def _describe(err: Any, root: type[BaseModel]) -> str:
    kind, value, loc = err["type"], err.get("input"), err["loc"]
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        # "fixed" is how a plain number is stored, not a key users write
        known = [k for k in parent.model_fields if k != "fixed"] if parent else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key{hint}; expected one of {', '.join(known)}" if known else "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]} (got {value!r})"
    if kind == "literal_error":
        return f"expected one of {err['ctx']['expected']} (got {value!r})"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {
            "greater_than": ">",
            "greater_than_equal": ">=",
            "less_than": "<",
            "less_than_equal": "<=",
        }[kind]
        bound = next(iter(err["ctx"].values()))
        return f"must be {op} {bound} (got {value!r})"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    return f"{err['msg']} (got {value!r})"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # A plain number is stored as {fixed: n}; the user wrote no 'fixed' key, so do not name it.
    return tuple(loc[:-1]) if loc and loc[-1] == "fixed" else tuple(loc)


def format_errors(exc: ValidationError, doc: YamlDoc, root: type[BaseModel]) -> list[str]:
    """One line per problem, in the order of the file."""
    found: dict[str, int] = {}
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        where = doc.where(loc)
        line = (
            f"{where}: {dotted(loc)}: {_describe(err, root)}"
            if loc
            else f"{where}: {_describe(err, root)}"
        )
        found.setdefault(line, doc.line_of(loc) or 0)
    return sorted(found, key=lambda text: found[text])
