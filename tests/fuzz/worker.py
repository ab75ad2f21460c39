"""Run fuzz cases [start, stop) in this process, one JSON line per case start and per verdict.

The parent (``runner.py``) reads the lines; a process killed by a signal (SIGSEGV, SIGBUS, or the
per-case SIGALRM this worker arms) is a crash or hang of the case it had started.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import run_case  # noqa: E402


def main() -> None:
    seed, start, stop, limit = (int(v) for v in sys.argv[1:5])
    warnings.simplefilter("ignore")
    scratch = Path(tempfile.mkdtemp(prefix="fcn-fuzz-"))
    for index in range(start, stop):
        print(json.dumps({"start": index}), flush=True)
        signal.alarm(limit)  # default action: the process dies, and the parent reports a hang
        result = run_case(seed, index, scratch)
        signal.alarm(0)
        print(json.dumps(result), flush=True)
    os._exit(0)  # skip interpreter teardown; the scratch folder is removed by the parent


if __name__ == "__main__":
    main()
