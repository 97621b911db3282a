"""YAML reading that remembers where every key came from.

PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is a string; practitioners write learning rates
that way, so such scalars are read as floats on purpose. Duplicate keys, which PyYAML silently
lets the last one win, are an error here: one of the two values would be ignored without a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adamtune.errors import ConfigError, first_line

Path_ = tuple[str | int, ...]

_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789"))


@dataclass
class YamlDoc:
    """A parsed YAML document plus the 1-based line of every key path in it."""

    data: Any
    source: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Path_) -> int | None:
        """Line of the deepest prefix of ``path`` that the document contains."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def where(self, path: Path_) -> str:
        line = self.line_of(path)
        return f"{self.source}:{line}" if line else self.source


def dotted(path: Path_) -> str:
    """``search.stages[0].params``: the key path as messages write it."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _walk(node: yaml.Node, path: Path_, doc: YamlDoc, loader: _Loader) -> Any:
    if isinstance(node, yaml.MappingNode):
        explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)  # expand merge keys (<<: *anchor) as PyYAML would
        merged = len(node.value) - explicit  # merged pairs come first; explicit keys override
        out: dict[Any, Any] = {}
        inherited: set[Path_] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError(
                    f"{doc.source}:{key_node.start_mark.line + 1}: keys must be plain names"
                )
            key = str(key) if not isinstance(key, str) else key
            here: Path_ = (*path, key)
            if key in out and index >= merged and here not in inherited:
                raise ConfigError(
                    f"{doc.source}:{key_node.start_mark.line + 1}: {dotted(here)}: duplicate key "
                    f"(first given on line {doc.lines[here]}); keep one"
                )
            if index < merged:
                inherited.add(here)
            else:
                inherited.discard(here)
            doc.lines[here] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, here, doc, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            at: Path_ = (*path, i)
            doc.lines[at] = item.start_mark.line + 1
            items.append(_walk(item, at, doc, loader))
        return items
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document, raising ConfigError (with file and line) on any syntax problem."""
    try:
        loader = _Loader(text)  # checks the characters first
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {first_line(exc)}") from None
    doc = YamlDoc(data=None, source=source)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.lines[()] = node.start_mark.line + 1
            doc.data = _walk(node, (), doc, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return doc


def read_yaml(path: Path) -> YamlDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    return parse_yaml(text, str(path))
