"""Reading ``retrainer.yaml`` safely and explaining what is wrong with it.

The YAML side of :mod:`retrainer.spec`: a safe loader that refuses duplicate keys and
``!!python`` tags, keeps the node tree (for line numbers), and turns pydantic's
validation errors into lines that name the key path, its line, what was expected and
what was given, with a did-you-mean for unknown keys.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from retrainer.errors import SpecError

__all__ = ["explain", "kind_of", "read_yaml"]

_LEADING_PATH = re.compile(r"^([a-z_]+(?:\.[a-z0-9_]+)+): ")


def kind_of(value: object) -> str:
    """What a YAML value is, in words: mapping, list, string, boolean, number."""
    kinds = {dict: "mapping", list: "list", str: "string", bool: "boolean"}
    return kinds.get(type(value), "number" if isinstance(value, int | float) else "value")


def read_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """(node tree, data) of ``text`` with a safe loader; duplicate keys and tags refused."""
    try:
        loader = yaml.SafeLoader(text)  # refuses non-printable characters (NUL...) at once
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise SpecError(
            f"{source}: not valid YAML at line {line}: character {exc.character:#06x} is not "
            "allowed (control characters such as NUL cannot appear in a spec)"
        ) from exc
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        _refuse_duplicates(node, ())
        data = loader.construct_document(node) if node is not None else None
    except SpecError as exc:
        raise SpecError(f"{source}: {exc.message}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        key = _path_at_mark(node, mark, ()) if mark is not None else None
        where += f" (in {'.'.join(map(str, key))})" if key else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if problem == "found unhashable key":
            problem += " ({...} or [...] used as a key; quote template text: '{{ x }}')"
        raise SpecError(f"{source}: not valid YAML{where}: {problem}") from exc
    finally:
        loader.dispose()
    return node, data


def _refuse_duplicates(node: yaml.Node | None, path: tuple[int | str, ...]) -> None:
    """Refuse a key given twice in one mapping (YAML would silently keep the last one)."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicates(item, (*path, i))
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[tuple[str, str]] = set()
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode):
            ident = (key.tag, key.value)
            if ident in seen:
                where = ".".join(map(str, path)) or "the top level"
                raise SpecError(
                    f"line {key.start_mark.line + 1}: key {key.value!r} is given twice "
                    f"in {where}; keep one"
                )
            seen.add(ident)
            _refuse_duplicates(value, (*path, key.value))


def _path_at_mark(
    node: yaml.Node | None, mark: yaml.Mark, path: tuple[int | str, ...]
) -> tuple[int | str, ...]:
    """The key path of the innermost node that spans ``mark`` (for parse errors)."""
    children: list[tuple[int | str, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        if any(_spans(key, mark) for key, _ in node.value):
            return path  # the problem is in a key of this mapping
        children = [(str(k.value), v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
    elif isinstance(node, yaml.SequenceNode):
        children = list(enumerate(node.value))
    for part, child in children:
        if _spans(child, mark):
            return _path_at_mark(child, mark, (*path, part))
    return path


def _spans(node: yaml.Node, mark: yaml.Mark) -> bool:
    return node.start_mark.index <= mark.index <= max(node.end_mark.index, node.start_mark.index)


def _node_at(node: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            return node
    return node


def _key_node_at(node: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The node to point at for ``loc``: the key of a mapping entry, or the list item."""
    parent = _node_at(node, loc[:-1])
    if isinstance(parent, yaml.MappingNode):
        return next((k for k, _ in parent.value if k.value == loc[-1]), parent)
    if isinstance(parent, yaml.SequenceNode) and isinstance(loc[-1], int):
        return parent.value[loc[-1]] if loc[-1] < len(parent.value) else parent
    return parent


def _fields_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def explain(
    exc: ValidationError, source: str, root: yaml.Node | None, model: type[BaseModel]
) -> str:
    """Every problem of ``exc``: key path, line, what was expected and what was given."""
    n = exc.error_count()
    lines = [f"{source}: {n} problem{'s' if n > 1 else ''} in the spec:"]
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        msg = err["msg"].removeprefix("Value error, ")
        named = _LEADING_PATH.match(msg) if err["type"] == "value_error" else None
        if named:  # a cross-field check names its own key: "data.holdout.by: ..."
            loc = (*loc, *(int(p) if p.isdigit() else p for p in named.group(1).split(".")))
            msg = msg[named.end() :]
        path = ".".join(str(p) for p in loc) or "(top level)"
        at = _key_node_at(root, loc) if loc else root
        line = f" (line {at.start_mark.line + 1})" if at is not None else ""
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"  {path}{line}: unknown key{hint} (expected one of: {', '.join(known)})")
        elif err["type"] == "missing":
            lines.append(f"  {path}{line}: required key is missing")
        else:
            given = err.get("input")
            hide = named or isinstance(given, dict | list) or repr(given) in msg
            shown = "" if hide else f" (given: {given!r})"
            lines.append(f"  {path}{line}: {msg}{shown}")
    return "\n".join(lines)
