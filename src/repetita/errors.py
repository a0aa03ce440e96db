"""One exception type for problems the user can fix.

The CLI turns a ``UserError`` into a single line on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: a malformed file, an impossible value, an unknown name.

    The message must name the problem (and the row or key where it applies) in one line.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def require(condition: bool, message: str) -> None:
    """Raise ``UserError(message)`` unless ``condition`` holds."""
    if not condition:
        raise UserError(message)


class Note(UserWarning):
    """Something the user should know that does not stop the work (a derived column, a dropped row).

    The CLI prints each as one line, ``repetita COMMAND: note: ...``; library callers see a warning."""


def note(message: str) -> None:
    import warnings

    warnings.warn(" ".join(str(message).split()), Note, stacklevel=2)
