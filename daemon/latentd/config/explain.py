"""Pydantic's validation errors turned into readable problems with key paths and "did you mean"."""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import annotated_types as at
from pydantic import (
    AfterValidator,
    BaseModel,
)
from pydantic.fields import FieldInfo

from latentd.config.problems import MISSING
from latentd.config.toml_out import _key


# ------------------------------------------------------------------- pydantic errors → readable problems
@dataclass
class _Node:
    """A type met while following an error's location through the models."""

    tp: Any
    constraints: tuple[Any, ...] = ()
    discriminator: str | None = None
    description: str | None = None


@dataclass
class _Walked:
    parts: list[str]  # key parts: ".name" or "[3]"
    node: _Node | None  # the type at the end of the location, if known
    owner: type[BaseModel] | None  # the model whose field the location names last
    unions: list[tuple[int, int, _Node]]  # plain unions passed: (loc index of member tag, len(parts), union)


def _unwrap(
    tp: Any, constraints: tuple[Any, ...] = (), disc: str | None = None, desc: str | None = None
) -> _Node:
    while typing.get_origin(tp) is Annotated:
        base, *extra = typing.get_args(tp)
        for item in extra:
            if isinstance(item, FieldInfo):
                constraints += tuple(item.metadata)
                disc = item.discriminator if isinstance(item.discriminator, str) else disc
                desc = desc or item.description
            else:
                constraints += (item,)
        tp = base
    return _Node(tp, constraints, disc, desc)


def _discriminator(info: FieldInfo) -> str | None:
    return info.discriminator if isinstance(info.discriminator, str) else None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(tp: Any) -> list[Any] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return None


def _field_names(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """Every key a model accepts (field names and validation aliases) → its field."""
    names: dict[str, FieldInfo] = {}
    for name, info in model.model_fields.items():
        names[name] = info
        alias = info.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            if isinstance(choice, str):
                names.setdefault(choice, info)
    return names


def _tag_values(model: Any, field: str) -> list[Any]:
    if not _is_model(model) or field not in model.model_fields:
        return []
    return list(typing.get_args(_unwrap(model.model_fields[field].annotation).tp))


def _walk(root: type[BaseModel], loc: tuple[str | int, ...]) -> _Walked:
    """Follow a pydantic error location through the model types: key parts, end type, owning model."""
    node: _Node | None = _Node(root)
    w = _Walked([], None, None, [])
    i = 0
    while i < len(loc):
        item = loc[i]
        if node is None:
            w.parts.append(f"[{item}]" if isinstance(item, int) else f".{_key(str(item))}")
            i += 1
            continue
        members = _members(node.tp)
        if members is not None:
            if len(members) == 1:  # Optional[X]: pydantic adds nothing to the location
                inner = _unwrap(members[0])
                node = _Node(
                    inner.tp, node.constraints + inner.constraints, inner.discriminator, node.description
                )
                continue
            if node.discriminator:  # the location names the tag, which is no key of the file
                picked = [m for m in members if item in _tag_values(_unwrap(m).tp, node.discriminator)]
            else:
                w.unions.append((i, len(w.parts), node))
                picked = [m for m in members if _label_matches(str(item), _unwrap(m).tp)]
            node = _unwrap(picked[0]) if picked else None
            i += 1
            continue
        if _is_model(node.tp):
            w.owner = node.tp
            info = _field_names(node.tp).get(str(item))
            w.parts.append(f".{_key(str(item))}")
            node = (
                None
                if info is None
                else _unwrap(info.annotation, tuple(info.metadata), _discriminator(info), info.description)
            )
            i += 1
            continue
        origin, args = typing.get_origin(node.tp), typing.get_args(node.tp)
        if origin in (list, tuple) and args:
            w.parts.append(f"[{item}]")
            node = _unwrap(args[0])
        elif origin is dict and args:
            w.parts.append(f".{_key(str(item))}")
            if i + 1 < len(loc) and loc[i + 1] == "[key]":  # the error is about the key itself
                node = _unwrap(args[0])
                i += 1
            else:
                node = _unwrap(args[1])
        else:
            w.parts.append(f"[{item}]" if isinstance(item, int) else f".{_key(str(item))}")
            node = None
        i += 1
    w.node = node
    return w


def _label_matches(label: str, tp: Any) -> bool:
    """Whether pydantic's union member label (``float``, ``list[constrained-int]``...) names ``tp``."""
    origin = typing.get_origin(tp)
    if origin is not None:
        return label.startswith(f"{getattr(origin, '__name__', origin)}[")
    name = getattr(tp, "__name__", None)
    return name is not None and (label == name or label.endswith(f"-{name}"))


_TYPE_ERRORS = {
    "int_from_float",
    "float_parsing",
    "int_parsing",
    "bool_parsing",
    "is_instance_of",
    "none_required",
}


def _mismatch(err: dict[str, Any], tag_pos: int) -> bool:
    """An error saying only 'the value is not of this union member's type'."""
    at_member_root = len(err["loc"]) == tag_pos + 1
    kind = err["type"]
    return at_member_root and (kind.endswith("_type") or kind in _TYPE_ERRORS)


_Error = tuple[int, dict[str, Any], _Walked]  # (position in pydantic's list, error, where it points)


def _translate(root: type[BaseModel], errors: list[dict[str, Any]]) -> list[tuple[str, object, str]]:
    """Pydantic errors → (key, value, message), one per real problem, in the order pydantic found them.

    A value that fits no member of a union gets one problem describing every allowed form; when it has
    the type of one member but breaks its rules, only that member's errors are kept.
    """
    walked = [(i, err, _walk(root, tuple(err["loc"]))) for i, err in enumerate(errors)]
    return [result for _, result in sorted(_reduce(walked, 0), key=lambda r: r[0])]


def _reduce(walked: list[_Error], level: int) -> list[tuple[int, tuple[str, object, str]]]:
    out: list[tuple[int, tuple[str, object, str]]] = []
    groups: dict[tuple[Any, ...], list[_Error]] = {}
    for i, err, w in walked:
        if len(w.unions) <= level:
            out.append((i, _explain(err, w)))
        else:
            tag_pos = w.unions[level][0]
            groups.setdefault(tuple(err["loc"][:tag_pos]), []).append((i, err, w))
    for group in groups.values():
        first, err, w = group[0]
        tag_pos, n_parts, union = w.unions[level]
        specific = [e for e in group if not _mismatch(e[1], tag_pos)]
        if specific:
            out.extend(_reduce(specific, level + 1))
        else:
            out.append((first, (_join_key(w.parts[:n_parts]), err["input"], f"must be {_describe(union)}")))
    return out


def _explain(err: dict[str, Any], w: _Walked) -> tuple[str, object, str]:
    """One pydantic error as (key, value, message)."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err["input"]
    parts = list(w.parts)
    node = w.node
    if w.unions and w.unions[-1][0] == len(err["loc"]) - 1:
        node = w.unions[-1][2]  # the error is about the union member as a whole: describe every form
    if kind == "latentd":
        if ctx.get("field"):
            parts.append(f".{ctx['field']}")
        return _join_key(parts), ctx.get("value", MISSING), str(ctx["message"])
    if kind == "missing":
        what = f": {w.node.description}" if w.node and w.node.description else ""
        return _join_key(parts), MISSING, f"required{what}"
    if kind == "extra_forbidden":
        keys = sorted(_field_names(w.owner)) if w.owner else []
        close = difflib.get_close_matches(str(err["loc"][-1]), keys, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return _join_key(parts), value, f"unknown key; {hint}allowed keys: {', '.join(keys)}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "kind")).strip("'\"")
        tags = [
            t for m in (_members(node.tp) if node else None) or [] for t in _tag_values(_unwrap(m).tp, field)
        ]
        allowed = ", ".join(f'"{t}"' for t in tags)
        parts.append(f".{field}")
        if kind == "union_tag_not_found":
            return _join_key(parts), MISSING, f"required: one of {allowed}"
        tag = ctx.get("tag")
        close = difflib.get_close_matches(str(tag), [str(t) for t in tags], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return _join_key(parts), tag, f"unknown {field}; {hint}allowed: {allowed}"
    if kind == "literal_error" and node is not None:
        choices = [str(c) for c in typing.get_args(node.tp)]
        close = difflib.get_close_matches(str(value), choices, n=1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return _join_key(parts), value, f"must be {_describe(node)}{hint}"
    if kind in ("value_error", "assertion_error"):
        return _join_key(parts), value, re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    if node is not None:
        return _join_key(parts), value, f"must be {_describe(node)}"
    return _join_key(parts), value, err["msg"]


def _join_key(parts: list[str]) -> str:
    return "".join(parts).lstrip(".")


def _num(x: float) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() and abs(x) < 1e15 else str(x)


def _range(constraints: tuple[Any, ...]) -> str:
    lo: Any = None
    hi: Any = None
    lo_open = hi_open = False
    for c in constraints:
        if isinstance(c, at.Ge):
            lo = c.ge
        elif isinstance(c, at.Gt):
            lo, lo_open = c.gt, True
        elif isinstance(c, at.Le):
            hi = c.le
        elif isinstance(c, at.Lt):
            hi, hi_open = c.lt, True
    if lo is not None and hi is not None:
        if not lo_open and not hi_open:
            return f" between {_num(lo)} and {_num(hi)}"
        return f" {'>' if lo_open else '>='} {_num(lo)} and {'<' if hi_open else '<='} {_num(hi)}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {_num(hi)}"
    return ""


def _count(constraints: tuple[Any, ...]) -> str:
    """How many items a list takes, as a prefix: '2 ', '1 or more ', '' (any number)."""
    lo = next((c.min_length for c in constraints if isinstance(c, at.MinLen)), None)
    hi = next((c.max_length for c in constraints if isinstance(c, at.MaxLen)), None)
    if lo is not None and lo == hi:
        return f"{lo} "
    if lo and hi is not None:
        return f"{lo} to {hi} "
    if lo:
        return f"{lo} or more "
    if hi is not None:
        return f"at most {hi} "
    return ""


def _length(constraints: tuple[Any, ...], unit: str) -> str:
    lo = next((c.min_length for c in constraints if isinstance(c, at.MinLen)), None)
    hi = next((c.max_length for c in constraints if isinstance(c, at.MaxLen)), None)
    if lo is not None and lo == hi:
        return f" of exactly {lo} {unit}"
    if lo and hi is not None:
        return f" of {lo} to {hi} {unit}"
    if lo:
        return f" of at least {lo} {unit}"
    if hi is not None:
        return f" of at most {hi} {unit}"
    return ""


def _describe(node: _Node, plural: bool = False) -> str:
    """What a type allows, in words: 'a number between 0 and 4', 'a list of at least 1 strings'."""
    tp, cons = node.tp, node.constraints
    members = _members(tp)
    if members is not None:
        return " or ".join(_describe(_unwrap(m, cons), plural) for m in members)
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(
            json.dumps(c) if isinstance(c, str) else str(c) for c in typing.get_args(tp)
        )
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        items = _describe(_unwrap(args[0]), plural=True) if args else "values"
        return f"{'lists' if plural else 'a list'} of {_count(cons)}{items}"
    if origin is dict or tp is dict or _is_model(tp):
        return ("tables" if plural else "a table") + _length(cons, "entries")
    if tp is bool:
        return "true or false"
    if tp is int:
        return ("integers" if plural else "an integer") + _range(cons)
    if tp is float:
        return ("numbers" if plural else "a number") + _range(cons)
    if tp is str:
        if any(isinstance(c, AfterValidator) for c in cons):
            return (
                "names (letters, digits, '_', '-', '.')"
                if plural
                else "a name (letters, digits, '_', '-', '.')"
            )
        return ("strings" if plural else "a string") + _length(cons, "characters")
    return getattr(tp, "__name__", str(tp))
