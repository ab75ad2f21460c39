"""The fuzz harness in the suite: a short budgeted run by default, >= 5000 cases under ``-m slow``.

``FCN_FUZZ_SEED`` reproduces a run; one case is rerun alone with ``python tests/fuzz/cases.py SEED INDEX``.
"""
from __future__ import annotations

import collections
import os

import pytest

from runner import run_fuzz

SEED = int(os.environ.get("FCN_FUZZ_SEED", "20261130"))


def _report(results: list[dict], failures: list[dict]) -> str:
    outcomes = collections.Counter((r["kind"], r.get("outcome", "?")) for r in results)
    lines = [f"{len(results)} cases (seed {SEED}), {len(failures)} failures; outcomes: {dict(sorted(outcomes.items()))}"]
    for f in failures[:10]:
        lines.append(f"case {f['index']} {f['kind']} {f['seed_file']} [{f['mutation']}]: {f['failure'][:1500]}")
    return "\n".join(lines)


def test_fuzz_budgeted():
    results, failures = run_fuzz(SEED, 100_000, budget_s=20)
    print(_report(results, failures))
    assert not failures, _report(results, failures)
    assert len(results) >= 30, "the fuzz run did too few cases to mean anything"
    outcomes = {r["outcome"] for r in results}
    assert {"converted", "refused"} <= outcomes, outcomes


@pytest.mark.slow
def test_fuzz_long():
    results, failures = run_fuzz(SEED + 1, 5000)
    print(_report(results, failures))
    assert len(results) == 5000
    assert not failures, _report(results, failures)
