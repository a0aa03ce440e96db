"""The guard of one command run: it starts the user's command and leaves nothing of it alive behind.

A user's command is rarely one process: ``bash -c '... | tee log'`` is a shell, a trainer and ``tee``; a
launcher such as torchrun starts one worker per GPU. Killing the command's process alone (what the
parent-death signal of a worker does) orphans the rest: they keep training with parent 1, and a rerun
puts a second trainer into the same run folder (measured: kill -9 of a study left both trainers of a
``| tee`` command alive).

So a command runs under this small process, started by the worker in a session of its own (so that
``kill -9`` of the study's process group does not reach it) with only the standard library (it starts in
milliseconds and imports nothing of repetita). The guard

- becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``): whatever the command starts and abandons is
  re-parented to the guard, not to init, so it can still be found and killed;
- starts the command in a process group of its own, inside the guard's session;
- ends, on every path (the command exits, its worker dies, a timeout or Ctrl-C sends SIGTERM), by
  killing the command's group, every process of its session and every descendant, until none is left;
- learns of its worker's death by ``PR_SET_PDEATHSIG`` (SIGTERM) and, where that is missing, by its
  parent id changing (polled);
- holds an exclusive lock on ``<run folder>/.guard.lock`` while anything of its run lives, so that a
  rerun started at once waits for the previous attempt to be reaped before its command starts.

Exit status: the command's (128 + N for a command killed by signal N), 127 if it cannot start, and
``STOPPED`` when the guard was told to stop or lost its worker.

Usage (by ``repetita.study.command.execute``): ``python -I guard.py PARENT_PID LOCK_FILE -- ARGV...``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

STOPPED = 143  # 128 + SIGTERM: the guard was told to stop (timeout, Ctrl-C) or its worker died
POLL = 0.05  # seconds between checks of the command and of the parent
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: the parent is polled, the group alone is killed
        return False


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of a live process from /proc, None if it is gone (or there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its closing one
    fields = text[text.rfind(")") + 2:].split()
    if fields[0] == "Z":  # a zombie is dead already; it only waits to be reaped
        return None
    return int(fields[1]), int(fields[3])


def leftovers(me: int) -> list[int]:
    """Every live process of this guard's session or below it in the process tree (not the guard)."""
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    info = {p: s for p in pids if p != me and (s := _stat(p)) is not None}
    mine = {p for p, (_, sid) in info.items() if sid == me}
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in info.items():
        children.setdefault(ppid, []).append(p)
    stack = [me, *mine]
    while stack:  # descendants that left the session (setsid) are still below the subreaper
        for c in children.get(stack.pop(), []):
            if c not in mine:
                mine.add(c)
                stack.append(c)
    return sorted(mine)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_all(group: int | None, me: int, patience: float = 30.0) -> None:
    """SIGKILL the command's group, then every leftover, until none is alive (reaping as it goes)."""
    deadline = time.monotonic() + patience
    while True:
        if group is not None:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        rest = leftovers(me)
        for pid in rest:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap()
        if not rest or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def main(argv: list[str]) -> int:
    parent, lock_path, sep, command = int(argv[0]), argv[1], argv[2], argv[3:]
    assert sep == "--" and command, "usage: guard.py PARENT_PID LOCK_FILE -- ARGV..."
    me = os.getpid()
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.append(True))
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the worker died before the death signal was armed
        return STOPPED
    import fcntl

    lock = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    while True:  # wait for an earlier attempt's guard to finish reaping its run (a rerun right after a kill)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if stop or os.getppid() != parent:
                return STOPPED
            time.sleep(POLL)
    group = None
    try:
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, process_group=0)
        except OSError as exc:
            sys.stderr.write(f"cannot start {command[0]!r}: {exc.strerror or exc}\n")
            return 127
        group = proc.pid
        while True:
            try:
                code = proc.wait(timeout=POLL)
                break
            except subprocess.TimeoutExpired:
                if stop or os.getppid() != parent:
                    return STOPPED
        return code if code >= 0 else 128 - code
    finally:
        kill_all(group, me)  # a child the command left behind dies with it, on every path
        os.close(lock)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
