"""Process helpers, in one place: is a process alive, tie a worker's life to its parent's, which GPUs this
machine shows.

(The command guard, ``repetita/study/guard.py``, keeps its own ``prctl``: it runs as ``python -I`` with
the standard library only, so that it starts in milliseconds and imports nothing of repetita.)
"""

from __future__ import annotations

import os


def pid_alive(pid: int | None) -> bool:
    """Whether a process of this host with that id lives (a process of another user counts as alive)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> None:
    """Pool initializer: on Linux, a worker gets SIGKILL when the runner dies (a command run's guard then
    reaps the command, repetita.study.guard).

    Without it a worker orphaned by ``kill -9`` of the runner keeps training its run while a
    restarted runner waits for it; with it the run is re-queued at once and resumes from its
    checkpoint. Elsewhere (no prctl) the restarted runner waits for the orphan instead.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def visible_gpus() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else the devices nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d for d in (x.strip() for x in env.split(",")) if d and d != "-1"]
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]
