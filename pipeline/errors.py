"""Errors that carry a message meant for the person running papertopics.

The CLI prints these as one line and exits non-zero, with no traceback: they describe
a mistake in the user's config or input, not a bug in papertopics.
"""


class PapertopicsError(Exception):
    """A problem the user can fix; its message says what and where."""


class ConfigError(PapertopicsError):
    """The YAML config is invalid: unknown key, wrong type, missing input, ..."""


class InputError(PapertopicsError):
    """An input file cannot be read at all, or holds no usable paper."""


class RunLockedError(PapertopicsError):
    """Another papertopics process is writing to the same output folder."""
