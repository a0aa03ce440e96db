"""Scaling laws: forms, estimation, table readers.

Importing the package registers the built-in law families in ``repetita.laws.law.LAWS``: the monotone
laws (``forms``) and the laws that turn (``overfit``). A plug-in family registers its own laws the same
way, with ``register_law``, wherever it is defined.
"""

from repetita.laws import forms, overfit  # noqa: F401  (built-in families register their laws)
