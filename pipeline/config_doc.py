"""The configuration explained: a reference page and commented configs, from the config model.

Every key, type, allowed value and default comes from the models in ``pipeline.config``
(the one place defaults live); the sentence that says why a default was chosen is the
comment beside the key in ``configs/default.yaml`` (a test checks that each setting there
has one and repeats the model's default). ``reference_markdown`` writes the docs' page
(``docs/configuration.md`` is filled in by the docs hook at build time);
``commented_config`` writes a config for ``papertopics init``.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel

from pipeline.config import ColumnMapping, InputSpec, RunConfig

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
# The config's sections (parse, embed, ..., history): every field of the model that is a model itself.
SECTIONS = tuple(
    name
    for name, field in RunConfig.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
)
_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?:- )?(?P<key>[a-z_]+):(?P<value>[^#]*)(?:#\s?(?P<comment>.*))?$")
_COMMENT_LINE = re.compile(r"^\s+#\s?(?P<comment>.*)$")


def default_comments(path: Path = DEFAULT_CONFIG) -> dict[str, str]:
    """Dotted key ("cluster.n_neighbors", "inputs.format") -> its comment in ``configs/default.yaml``.

    A comment continued on the lines below (only a comment, indented) is joined to it.
    """
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _KEY_LINE.match(line)
        if match:
            indent = len(match["indent"]) + (2 if line.lstrip().startswith("- ") else 0)
            while stack and stack[-1][0] >= indent:
                stack.pop()
            key = ".".join([*(name for _, name in stack), match["key"]])
            if not match["value"].strip():
                stack.append((indent, match["key"]))
            last = key
            if match["comment"]:
                comments[key] = match["comment"].strip()
            continue
        more = _COMMENT_LINE.match(line)
        if more and last is not None and last in comments:
            comments[last] += " " + more["comment"].strip()
        elif not line.strip():
            last = None
    return comments


def type_text(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A field's type as a reader writes it: ``int, 2 to 1000, or "auto"``, ``"skip" or "fail"``."""
    metadata = list(metadata or [])
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = get_args(annotation)
        return type_text(inner, [*metadata, *extra])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(arg) for arg in get_args(annotation))
    if origin is Literal:
        return " | ".join(f'"{value}"' if isinstance(value, str) else str(value) for value in get_args(annotation))
    if origin is list:
        return f"list of {type_text(get_args(annotation)[0])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (below)"
    name = getattr(annotation, "__name__", str(annotation))
    bounds = list(dict.fromkeys(_bounds(metadata)))
    return f"{name} ({', '.join(bounds)})" if bounds else name


def _bounds(metadata: list[Any]) -> Iterator[str]:
    """The bounds in a field's metadata (annotated_types' Ge, Le, ... or a Field holding them) as text."""
    for item in metadata:
        nested = getattr(item, "metadata", None)
        if isinstance(nested, list):
            yield from _bounds(nested)
            continue
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attr, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                yield f"{sign} {value:,}" if isinstance(value, int) and abs(value) >= 10_000 else f"{sign} {value}"


def _fields(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any, str, bool]]:
    """(dotted key, default, type text, required) of every setting of ``model``, sections flattened."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _fields(annotation, f"{key}.")
            continue
        default = field.get_default(call_default_factory=True)
        yield key, default, type_text(annotation, list(field.metadata)), field.is_required()


def _yaml_value(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def reference_markdown() -> str:
    """The configuration reference: one table per section, every key with its type, default and why."""
    comments = default_comments()
    out = [
        "Every key a config may hold, generated from the config model (`pipeline/config.py`, the one place",
        "defaults live) with the reason for each default from `configs/default.yaml`. Unknown keys and bad",
        "values stop the run with one line naming the key and what is allowed.",
        "",
    ]
    groups: list[tuple[str, type[BaseModel], str]] = [
        ("Top level", RunConfig, ""),
        ("inputs (each entry)", InputSpec, "inputs."),
        ("inputs.columns", ColumnMapping, "inputs.columns."),
    ]
    groups += [(section, RunConfig.model_fields[section].annotation, f"{section}.") for section in SECTIONS]  # type: ignore[misc]
    for title, model, prefix in groups:
        out += [f"## {title}", ""]
        if model.__doc__ and model not in (RunConfig,) and not model.__doc__.startswith("!!!"):
            out += [model.__doc__.strip().splitlines()[0], ""]
        out += ["| key | type | default | why |", "|---|---|---|---|"]
        for key, default, kind, required in _fields(model, prefix):
            if title == "Top level" and ("." in key or key == "inputs"):
                continue
            if title.startswith("inputs (") and key.startswith("inputs.columns."):
                continue
            shown = "required" if required else f"`{_yaml_value(default)}`"
            why = comments.get(key, "").replace("|", "\\|")
            out.append(f"| `{key}` | {kind.replace('|', '&#124;')} | {shown} | {why} |")
        out.append("")
    return "\n".join(out)


def commented_config(name: str, inputs: list[dict[str, Any]], notes: dict[int, str], output_dir: str) -> str:
    """A YAML config for ``inputs`` with every other setting at its default, each with its reason.

    ``notes`` maps an input's position to what was found in its files (written as a comment).
    """
    comments = default_comments()

    def line(key: str, value: Any, indent: int) -> str:
        text = f"{' ' * indent}{key.rsplit('.', 1)[-1]}: {_yaml_value(value)}"
        why = comments.get(key)
        return f"{text:<40}# {why}" if why else text

    out = [
        "# papertopics config written by `papertopics init`: run it with `papertopics run THIS.yaml`.",
        "# Every setting below the inputs is at its default; delete any line to keep the default.",
        "",
        f"{f'name: {_yaml_value(name)}':<40}# names the output folder: {output_dir}/{name}/",
        line("output_dir", output_dir, 0),
        line("seed", RunConfig.model_fields["seed"].default, 0),
        "",
        "inputs:",
    ]
    for index, spec in enumerate(inputs):
        if index in notes:
            out.append(f"  # {notes[index]}")
        out.append(f"  - path: {_yaml_value(spec['path'])}")
        for key in ("format", "year"):
            if key in spec:
                out.append(line(f"inputs.{key}", spec[key], 4))
        if spec.get("columns"):
            out.append("    columns:                            # which column holds which paper field")
            out += [f"      {field}: {_yaml_value(column)}" for field, column in spec["columns"].items()]
    for section in SECTIONS:
        out += ["", f"{section}:"]
        depth: dict[str, int] = {}
        for key, default, _kind, _required in _fields(RunConfig.model_fields[section].annotation, f"{section}."):  # type: ignore[arg-type]
            parts = key.split(".")
            for level in range(1, len(parts) - 1):
                parent = ".".join(parts[: level + 1])
                if parent not in depth:
                    depth[parent] = level
                    header = f"{'  ' * level}{parts[level]}:"
                    out.append(f"{header:<40}# {comments[parent]}" if parent in comments else header)
            out.append(line(key, default, 2 * (len(parts) - 1)))
    return "\n".join(out) + "\n"
