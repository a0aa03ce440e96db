"""Scaling laws: forms, estimation, table readers.

Importing the package registers the built-in law families in ``repetita.laws.law.LAWS``: the monotone
laws (``forms``) and the laws that turn (``overfit``) and the law over whole curves (``curve_law``). A plug-in family registers its own laws the same
way, with ``register_law``, wherever it is defined.
"""

from repetita.laws import curve_law, forms, overfit  # noqa: F401  (built-in families register their laws)
