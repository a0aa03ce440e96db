"""Theory lab: one-pass and multi-epoch SGD on linear regression, and the reuse rate E(K, N).

Modules (imported on demand, so ``import repetita.theory`` stays cheap for the CLI):

- ``spectra``: the problem (spectrum, target, noise, design) and its string grammar;
- ``exact``: closed-form one-pass risk, stable learning-rate range, tuned one-pass curve R*(1, n);
- ``simulate``: compiled multi-epoch SGD Monte Carlo with a linearised control variate;
- ``reuse``: optimal learning rate per (K, N), E(K, N), K*(N), plateau and asymptote fits;
- ``plots``: figures.
"""
