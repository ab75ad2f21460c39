"""Drive fuzz workers in subprocesses so that a crash or a hang is a finding, not a lost run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "worker.py"
ROOT = Path(__file__).resolve().parents[2]


def run_fuzz(seed: int, count: int, *, budget_s: float | None = None, case_limit_s: int = 60,
             batch: int = 400) -> tuple[list[dict], list[dict]]:
    """Run cases 0..count-1 (or as many as ``budget_s`` allows); (all verdicts, failures).

    A worker that dies by a signal or exits early marks the case it had started as a crash (or a
    hang, for its alarm), and the run goes on from the next case in a fresh worker.
    """
    results: list[dict] = []
    next_index, started = 0, time.monotonic()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    while next_index < count:
        if budget_s is not None and time.monotonic() - started > budget_s:
            break
        stop = min(count, next_index + batch)
        proc = subprocess.Popen([sys.executable, str(WORKER), str(seed), str(next_index), str(stop),
                                 str(case_limit_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=ROOT)
        current = None
        for line in proc.stdout:
            record = json.loads(line)
            if "start" in record:
                current = record["start"]
                if budget_s is not None and time.monotonic() - started > budget_s:
                    proc.send_signal(signal.SIGTERM)
                    current = None
                    break
            else:
                results.append(record)
                next_index = record["index"] + 1
                current = None
        stderr = proc.stderr.read()
        code = proc.wait()
        if current is not None:
            what = "hang (case time limit)" if code == -signal.SIGALRM else f"crash (exit {code})"
            results.append({"index": current, "kind": "?", "seed_file": "?", "mutation": "?",
                            "failure": f"{what}: {stderr[-500:]}"})
            next_index = current + 1
        elif code not in (0, -signal.SIGTERM) and next_index < stop:
            raise RuntimeError(f"fuzz worker failed outside any case (exit {code}): {stderr[-2000:]}")
    return results, [r for r in results if r["failure"]]
