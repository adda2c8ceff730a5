"""Errors that carry a message meant for the person running papertopics.

The CLI prints these as one line and exits non-zero, with no traceback: they describe
a mistake in the user's config or input, or a problem of the machine (a full disk), not
a bug in papertopics.
"""

from __future__ import annotations

import re

# C0/C1 control characters (newlines included): a message quotes file names, column names
# and snippets of input text, and none of them may break the one line or drive the terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A message quotes values from the config and the input: each is cut to this many characters
# (a 1 MB value was echoed whole), and a whole message to MAX_MESSAGE_CHARS.
MAX_ECHO_CHARS = 200
MAX_MESSAGE_CHARS = 2_000


class PapertopicsError(Exception):
    """A problem the user can fix; its message says what and where."""


class ConfigError(PapertopicsError):
    """The YAML config is invalid: unknown key, wrong type, missing input, ..."""


class InputError(PapertopicsError):
    """An input file cannot be read at all, or holds no usable paper."""


class OutputError(PapertopicsError):
    """The output folder cannot be written: disk full, read-only, a file where a folder should be."""


class WorkerDiedError(PapertopicsError):
    """A process computing part of a stage died without a result (killed, out of memory)."""


class RunLockedError(PapertopicsError):
    """Another papertopics process is writing to the same output folder."""


class RunFolderError(PapertopicsError):
    """A folder opened as a finished run is not one, or lacks what was asked of it (a stage, a topic)."""


def shorten(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters for a message, saying how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def one_line(message: str) -> str:
    r"""``message`` with every control character written as an escape ("\n" -> "\\n"), cut to MAX_MESSAGE_CHARS."""
    return _CONTROL.sub(lambda match: repr(match.group(0))[1:-1], shorten(message, MAX_MESSAGE_CHARS))
