"""The project's own user errors: a mistake in what the user gave (an option, a name, a file,
a data row), said in one line. The ``ralign`` command prints one and exits with status 2; any
other exception is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user gave, with a message that names it and where."""


class UnknownNameError(UserError, KeyError):
    """A name (a benchmark, a reference model) that is not known; a ``KeyError`` too, for
    callers that look names up."""

    def __str__(self) -> str:
        # KeyError's own str() quotes its message.
        return str(self.args[0]) if self.args else ""
