"""Reading a config file's YAML safely: a size cap, an alias-bomb cap, over-long integers refused.

Every problem is one ``ConfigError`` line naming the file; ``pipeline.config`` validates what it reads.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError, shorten

# A config is a few kilobytes; these caps make a hostile one fail at once, with a short message.
MAX_CONFIG_BYTES = 1_000_000
# Values (scalars, lists, mappings) a config may hold once YAML aliases are expanded: a "billion
# laughs" file of 9 anchors expands to 9**9 values and took 21 s to give a 312 MB message.
MAX_CONFIG_VALUES = 100_000


class _ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a document whose aliases expand past MAX_CONFIG_VALUES."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_CONFIG_VALUES:
            raise yaml.YAMLError(
                f"it holds more than {MAX_CONFIG_VALUES:,} values once its aliases (*name) are expanded"
            )
        return node

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python turns into an int (sys.get_int_max_str_digits)
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"line {node.start_mark.line + 1}: an integer of {len(node.value):,} characters, more than the "
                f"{sys.get_int_max_str_digits():,} digits Python reads; no setting takes a number so large",
                node.start_mark,
            ) from None


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _ConfigLoader.construct_yaml_int)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for with every alias written out; each node is counted once."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a node that contains itself (&a [*a]) counts once
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value)
    sizes[id(node)] = size
    return size


def read_yaml(path: Path) -> Any:
    """The YAML document of a config file; ConfigError for a file too large, not YAML or an alias bomb."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes is too large for a config (at most {MAX_CONFIG_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid YAML ({shorten(str(exc))})") from None
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader that also counts expanded aliases
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({shorten(str(exc).splitlines()[0])})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
