"""A command-recipe study killed with kill -9 and resumed, then checked against the same commands run by hand.

    .venv/bin/python experiments/command_kill_resume.py examples/hf_trainer/study.toml --dir out/hf_kill \
        [--kills 2] [--workers 2]

1. ``repetita run SPEC`` starts; once a run more has finished since the last start and another is running,
   the driver gets SIGKILL. Its workers, and the training commands they started, die with it
   (PR_SET_PDEATHSIG); the script checks that no command of the study is left running.
2. After ``--kills`` kills, ``repetita run`` starts again and completes the study.
3. Every run must be recorded once (one store row, one tidy row), runs finished before a kill must not
   run again, and every run's loss must equal what its command gives when run again by hand into a fresh
   folder (the command line from its ``command.json``, with only the output folder changed).

Prints one line per kill and a summary; exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def snapshot(db: Path) -> tuple[dict, int]:
    con = sqlite3.connect(db, timeout=30)
    try:
        done = dict(con.execute("SELECT id, attempts FROM runs WHERE status='done'").fetchall())
        running = con.execute("SELECT COUNT(*) FROM runs WHERE status='running'").fetchone()[0]
    finally:
        con.close()
    return done, running


def commands_alive(study: Path) -> int:
    """Processes whose command line names a run folder of the study (its training commands)."""
    n = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"{study}/runs/" in cmd and "command_kill_resume" not in cmd:
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("spec")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    study = Path(args.dir).resolve()
    if study.exists():
        sys.exit(f"{study} exists: give a new folder")
    cmd = [sys.executable, "-m", "repetita.cli", "run", args.spec, "--dir", str(study), "--workers", str(args.workers)]
    t0 = time.time()
    done_at_kill: dict = {}
    ok = True
    for k in range(args.kills):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        target = len(done_at_kill) + 1
        while True:
            time.sleep(0.5)
            if proc.poll() is not None:
                sys.exit("the study ended before it could be killed: " + proc.stderr.read().decode()[-500:])
            try:
                done, running = snapshot(study / "store.sqlite")
            except sqlite3.Error:
                continue
            if len(done) >= target and running:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(1.0)
        left = commands_alive(study)
        ok &= left == 0
        done_at_kill = done
        print(f"kill {k + 1} at {time.time() - t0:.0f} s: {len(done)} runs done, {running} running; "
              f"training commands left running after the kill: {left}", flush=True)
    rc = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
    if rc.returncode != 0:
        sys.exit(f"the resumed study failed: {rc.stderr[-1000:]}")
    print(f"resumed and finished at {time.time() - t0:.0f} s: {json.loads(rc.stdout)['counts']}", flush=True)
    con = sqlite3.connect(study / "store.sqlite")
    runs = con.execute("SELECT id, attempts, metrics FROM runs").fetchall()
    tidy = [json.loads(r[0])["run_id"] for r in con.execute("SELECT row FROM rows")]
    con.close()
    once = len(runs) == len({r[0] for r in runs}) == len(tidy) == len(set(tidy))
    not_redone = all(a == done_at_kill[i] for i, a, _ in runs if i in done_at_kill)
    interrupted = sum(a > 1 for _, a, _ in runs)
    mismatches = []
    with tempfile.TemporaryDirectory() as tmp:
        for rid, _, metrics in runs:
            folder = study / "runs" / rid
            argv = shlex.split(json.loads((folder / "command.json").read_text())["command"])
            out = Path(tmp) / rid
            out.mkdir()
            argv = [str(out) if a == str(folder) else a for a in argv]
            subprocess.run(argv, check=True, capture_output=True)
            by_hand = json.loads((out / "result.json").read_text())["eval_loss"]
            if by_hand != json.loads(metrics)["val_loss"]:
                mismatches.append((rid, by_hand, json.loads(metrics)["val_loss"]))
    ok &= once and not_redone and not mismatches
    print(f"{len(runs)} runs, each recorded once: {once}; finished before a kill and not run again: {not_redone}; "
          f"runs interrupted and run again: {interrupted}; losses equal to the commands run by hand: "
          f"{len(runs) - len(mismatches)}/{len(runs)}" + (f" (differ: {mismatches})" if mismatches else ""))
    print("all checks pass" if ok else "A CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
