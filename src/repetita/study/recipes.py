"""The built-in recipes and kinds of run, listed once: importing this module registers them.

``repetita.lm.recipes`` defines the LM lab's recipes (standard, regularized, ensemble, distill,
self-distill, reuse) and ``repetita.study.command`` the ``command`` recipe (a user's own trainer); each
registers its recipes where it defines them. The registry (``repetita.recipe_registry``) sits at the bottom
of the package and imports neither: this list, at the top of the study layer, is imported by the CLI and by
the study (spec expansion, analysis), the places that name recipes. A plug-in recipe is registered by
importing its own module the same way. The kinds of run (``repetita.study.kinds``): ``lm`` in
``repetita.study.lab_runs``, ``command`` in ``repetita.study.command``.
"""

from __future__ import annotations

from repetita.lm import recipes as lab_recipes
from repetita.study import command as command_recipe
from repetita.study import lab_runs

BUILTIN = (lab_recipes, command_recipe, lab_runs)
