"""Small linear algebra on one BLAS thread.

The law fits, bootstraps, plans and reuse estimates multiply matrices of a few hundred rows by a
handful of parameters. OpenBLAS splits even these across every core and spin-waits between calls, so
beside a training job on the same machine a fit oversubscribes the cores: on a 2-core machine the free
data-constrained fit of a 32-row table took 8.0 s wall with the default threads against 2.4 s with one
beside a two-thread training job, and 1.8 vs 1.7 s idle (benchmarks/fit_busy.py, BENCHMARKS.md). One
thread also keeps the order of the floating-point reductions the same whatever the core count.

threadpoolctl (a maintained library) does the limiting; torch keeps its own thread setting.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

F = TypeVar("F", bound=Callable)

_state = threading.local()


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Limit every loaded BLAS (numpy's and scipy's OpenBLAS, MKL) to one thread inside the block.

    Re-entrant and cheap when nested: only the outermost block talks to threadpoolctl.
    """
    if getattr(_state, "depth", 0):
        _state.depth += 1
        try:
            yield
        finally:
            _state.depth -= 1
        return
    # scipy loads its own OpenBLAS on import: load it first so that the limit reaches it too
    import scipy.linalg  # noqa: F401
    import scipy.optimize  # noqa: F401
    from threadpoolctl import threadpool_limits

    _state.depth = 1
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        _state.depth = 0


def single_threaded(fn: F) -> F:
    """Decorator form of :func:`one_blas_thread`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
