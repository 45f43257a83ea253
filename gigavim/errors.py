"""Errors a user can cause.

Everything a user can get wrong (a bad path, an unreadable slide, an unwritable output, an
unknown model) raises a :class:`GigavimError` subclass with a one-line message that names the
file and what is wrong. The CLI prints that line and exits non-zero without a traceback; any
other exception is a bug and is shown in full.
"""

from __future__ import annotations


class GigavimError(Exception):
    """Base class of user-facing errors; ``str(err)`` is the one line shown to the user."""

    exit_code = 2


class InputError(GigavimError):
    """An input file is missing, unsupported, corrupt or unreadable."""


class OutputError(GigavimError):
    """An output cannot be written (exists, unwritable, disk full, unknown format)."""

    exit_code = 3


class ModelError(GigavimError):
    """A model name, checkpoint or configuration is unknown, unsafe or inconsistent."""

    exit_code = 4


class UsageError(GigavimError):
    """Options that contradict each other or lack a required value (e.g. no pixel size)."""
