"""Decisions: what to train for a budget on a fixed corpus, from fitted laws and measured runs.

The layer between the laws (forms, estimation, table readers: ``repetita.laws``) and the studies that
run experiments (``repetita.study``). Allocation under one law (``allocate``), a fixed model size
(``fixed_size``), recipes as data-efficiency multipliers (``efficiency``), the choice among laws
(``laws``), the runs a study measured (``measured``), the study's decision and its first screen
(``study``, ``decision``), and which runs to do next (``design``, ``next_runs``, ``retrospective``).
Nothing here imports torch.
"""
