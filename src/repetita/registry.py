"""The one mechanism behind every plug-in registry (laws, recipes, curve readers, runners, kinds of run).

A :class:`Registry` is a name -> plug-in mapping that also remembers where each name was registered, so a
name registered twice is refused in one line naming both places. The place is read from the caller's frame
(``sys._getframe``), not ``inspect.stack``, which reads the source of every frame on the stack: with it,
registering the built-in laws alone added about 60 ms to every import of ``repetita.laws``.
"""

from __future__ import annotations

import sys

from repetita.errors import UserError


class Registry(dict):
    """``name -> plug-in``; ``add`` refuses a second registration of a name (``replace=True`` redefines one,
    e.g. in a test) and a reserved one. ``what`` names the kind of plug-in in messages ("law", "recipe", ...)."""

    def __init__(self, what: str, reserved: dict[str, str] | None = None):
        super().__init__()
        self.what = what
        # names taken by something that is not a plug-in (curve readers: "tidy", the table reader) -> its place
        self.where: dict[str, str] = dict(reserved or {})
        self.reserved = frozenset(self.where)

    def add(self, name: str, value, replace: bool = False, depth: int = 2):
        """Register ``value`` under ``name``. ``depth``: frames from here to the plug-in's own register call
        (2: the registry's public ``register_*`` function was called from the plug-in's module)."""
        frame = sys._getframe(depth)
        where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        if name in self.reserved or (name in self and not replace):
            raise UserError(f"{self.what} {name!r} is registered twice: at {self.where.get(name, '?')} and at {where}")
        self[name] = value
        self.where[name] = where
        return value
