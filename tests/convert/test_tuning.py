"""The measured choice among equivalent computations (convert.tuning), with a fake timer."""
from __future__ import annotations

import json
import time

import pytest
import torch

from convert import tuning

EPS = float(torch.finfo(torch.float32).eps)


def tripled(error: float = 0.0):
    """A candidate computing 3x in fp32, off by ``error`` of the output's range."""
    def run(x: torch.Tensor) -> torch.Tensor:
        y = x * 3
        return y + error * float(y.abs().max())
    return run


def choose(candidates, key: str = "layer") -> str:
    x = torch.rand(2, 3, 4, 5) + 0.5
    return tuning.choose(candidates, "base", accuracy_key=key, accuracy_input=x, reference=lambda y: y * 3,
                         timing_key=key, timing_input=x)


@pytest.mark.parametrize(("fast_seconds", "expected"), [(0.85, "fast"), (0.95, "base"), (1.2, "base")])
def test_a_candidate_must_beat_the_baseline_by_the_margin(fake_timer, fast_seconds, expected):
    fake_timer({"base": 1.0, "fast": fast_seconds})
    assert tuning.SPEED_MARGIN == 0.9
    assert choose({"base": tripled(), "fast": tripled()}) == expected


@pytest.mark.parametrize(("fast_seconds", "expected"), [(0.93, "fast"), (0.97, "base")])
def test_a_choice_may_ask_its_own_margin(fake_timer, fast_seconds, expected):
    """The training paths ask 0.95 (``convert.trainpath.SPEED_MARGIN``) instead of 0.9."""
    fake_timer({"base": 1.0, "fast": fast_seconds})
    x = torch.rand(2, 3, 4, 5) + 0.5
    assert tuning.choose({"base": tripled(), "fast": tripled()}, "base", accuracy_key="m", accuracy_input=x,
                         reference=lambda y: y * 3, timing_key="m", timing_input=x, margin=0.95) == expected


def test_the_fastest_of_several_that_pass_wins(fake_timer):
    fake_timer({"base": 1.0, "a": 0.5, "b": 0.3, "c": 0.6})
    assert choose({"base": tripled(), "a": tripled(), "b": tripled(), "c": tripled()}) == "b"


def test_accuracy_gate_rejects_a_fast_candidate_with_more_than_twice_the_error(fake_timer):
    """The baseline's fp32 error here is below one ulp of the range, so the limit is 2 ulps."""
    fake_timer({"base": 1.0, "sloppy": 0.1, "close": 0.5})
    candidates = {"base": tripled(), "sloppy": tripled(4 * EPS), "close": tripled(0.5 * EPS)}
    assert choose(candidates) == "close"
    errors = tuning._memory[next(iter(tuning._memory))]["accuracy"]["layer"]
    assert errors["base"] <= EPS and errors["sloppy"] > 2 * EPS >= errors["close"]
    fake_timer({"base": 1.0, "sloppy": 0.1})
    assert choose({"base": tripled(), "sloppy": tripled(4 * EPS)}) == "base"


def test_gate_is_relative_to_the_baseline_error(fake_timer):
    """A baseline that is itself off by 10 ulps lets a candidate off by 15 through, not one off by 30
    (each give or take one ulp of rounding)."""
    fake_timer({"base": 1.0, "x": 0.1})
    assert choose({"base": tripled(10 * EPS), "x": tripled(15 * EPS)}) == "x"
    fake_timer({"base": 1.0, "x": 0.1})
    assert choose({"base": tripled(10 * EPS), "x": tripled(30 * EPS)}) == "base"


def test_references_raise_the_bar_but_are_never_chosen_or_timed(fake_timer, monkeypatch):
    """A reference (the baseline's formula in another layout) off by 20 ulps lets a candidate off
    by 30 through; the reference itself, though "fastest", is neither timed nor chosen."""
    fake_timer({"base": 1.0, "x": 0.5, "other_layout": 0.01})
    timed = []
    monkeypatch.setattr(tuning, "time_candidates", lambda runs: timed.extend(runs) or
                        {name: {"base": 1.0, "x": 0.5}[name] for name in runs})
    x = torch.rand(2, 3, 4, 5) + 0.5
    picked = tuning.choose({"base": tripled(), "x": tripled(30 * EPS)}, "base", accuracy_key="k",
                           accuracy_input=x, reference=lambda y: y * 3, timing_key="k", timing_input=x,
                           references={"other_layout": tripled(20 * EPS)})
    assert picked == "x" and sorted(timed) == ["base", "x"]
    fake_timer({"base": 1.0, "x": 0.5})
    assert tuning.choose({"base": tripled(), "x": tripled(60 * EPS)}, "base", accuracy_key="k2",
                         accuracy_input=x, reference=lambda y: y * 3, timing_key="k2", timing_input=x,
                         references={"other_layout": tripled(20 * EPS)}) == "base"


def test_several_outputs_must_each_pass(fake_timer):
    """A run returning several tensors (a training step) is gated per tensor: accurate in one
    output does not excuse another."""
    fake_timer({"base": 1.0, "x": 0.1})

    def pair(e1: float, e2: float):
        return lambda y: (tripled(e1)(y), tripled(e2)(y))

    x = torch.rand(2, 3, 4, 5) + 0.5
    kwargs = dict(accuracy_input=x, reference=lambda y: (y * 3, y * 3), timing_input=x)
    assert tuning.choose({"base": pair(0, 10 * EPS), "x": pair(15 * EPS, 0)}, "base",
                         accuracy_key="p1", timing_key="p1", **kwargs) == "base"
    assert tuning.choose({"base": pair(10 * EPS, 10 * EPS), "x": pair(15 * EPS, 5 * EPS)}, "base",
                         accuracy_key="p2", timing_key="p2", **kwargs) == "x"


def test_a_lone_candidate_is_not_measured(fake_timer, monkeypatch):
    fake_timer({})
    monkeypatch.setattr(tuning, "time_candidates", lambda runs: pytest.fail("measured"))
    assert choose({"base": tripled()}) == "base"


def test_cache_file_is_keyed_by_cpu_threads_and_torch(monkeypatch, tmp_path):
    monkeypatch.setenv(tuning.CACHE_ENV, str(tmp_path))
    key = {"cpu": "Some CPU [0123abcd]", "threads": 4, "torch": "2.13.0"}
    path = tuning.cache_file(key)
    assert path.parent == tmp_path and path.name.startswith("fastpath-") and path.suffix == ".json"
    assert tuning.cache_file(dict(key)) == path
    for field, other in (("cpu", "Another CPU [0123abcd]"), ("threads", 8), ("torch", "2.12.0")):
        assert tuning.cache_file({**key, field: other}) != path, field
    assert set(tuning.machine_key()) == {"cpu", "threads", "torch"}
    assert tuning.machine_key()["threads"] == torch.get_num_threads()
    monkeypatch.setenv(tuning.CACHE_ENV, "off")
    assert tuning.cache_file(key) is None
    monkeypatch.delenv(tuning.CACHE_ENV)
    assert tuning.cache_file(key).parent == tuning.DEFAULT_CACHE_DIR


def test_choices_persist_on_disk_and_are_not_measured_again(monkeypatch, tmp_path):
    monkeypatch.setenv(tuning.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(tuning, "_memory", {})
    calls = []
    monkeypatch.setattr(tuning, "time_candidates",
                        lambda runs: calls.extend(runs) or {name: {"base": 1.0, "fast": 0.5}[name] for name in runs})
    candidates = {"base": tripled(), "fast": tripled()}
    assert choose(candidates) == "fast" and sorted(calls) == ["base", "fast"]
    stored = json.loads(tuning.cache_file().read_text())
    assert stored["machine"] == tuning.machine_key()
    assert stored["timing"]["layer"] == {"base": 1.0, "fast": 0.5}
    tuning.forget()  # a new process: only the file remains
    calls.clear()
    assert choose(candidates) == "fast" and calls == []
    assert choose(candidates, key="another layer") == "fast" and sorted(calls) == ["base", "fast"]
    assert set(json.loads(tuning.cache_file().read_text())["timing"]) == {"layer", "another layer"}


def test_the_first_layout_hand_off_stands_and_persists(monkeypatch, tmp_path):
    """A recorded hand-off is never replaced (a producer that changed its layout because of it
    cannot flip it back), and a new process reads it from the file."""
    monkeypatch.setenv(tuning.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(tuning, "_memory", {})
    assert tuning.handoff("train 1x64@76 nchw") is None
    tuning.record_handoff("train 1x64@76 nchw", "channels_last")
    tuning.record_handoff("train 1x64@76 nchw", "nchw")
    assert tuning.handoff("train 1x64@76 nchw") == "channels_last"
    tuning.forget()
    assert tuning.handoff("train 1x64@76 nchw") == "channels_last"
    assert json.loads(tuning.cache_file().read_text())["handoff"] == {"train 1x64@76 nchw": "channels_last"}


def test_a_corrupt_cache_file_is_ignored_and_rewritten(monkeypatch, tmp_path):
    monkeypatch.setenv(tuning.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(tuning, "_memory", {})
    monkeypatch.setattr(tuning, "time_candidates", lambda runs: {"base": 1.0, "fast": 0.5})
    tuning.cache_file().write_text("{not json")
    assert choose({"base": tripled(), "fast": tripled()}) == "fast"
    assert json.loads(tuning.cache_file().read_text())["timing"]["layer"]["fast"] == 0.5


def test_real_timer_takes_turns_and_keeps_the_best_of_each(monkeypatch):
    """Each run is warmed up, then the runs take turns (a drift in the machine's speed hits all
    of them alike), and each gets its fastest timed call, never the warm-up."""
    monkeypatch.setattr(tuning, "TIMING_REPEATS", 3)
    calls = []
    delays = {"a": iter([0.0, 0.1, 0.0, 0.1]), "b": iter([0.0, 0.1, 0.02, 0.1])}

    def run(name: str) -> None:
        calls.append(name)
        time.sleep(next(delays[name]))

    seconds = tuning.time_candidates({"a": lambda: run("a"), "b": lambda: run("b")})
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert 0 <= seconds["a"] < 0.02 <= seconds["b"] < 0.1


def test_probe_input_is_deterministic_nonnegative_and_keeps_the_layout():
    like = torch.empty(1, 4, 5, 6).contiguous(memory_format=torch.channels_last)
    a = tuning.probe_input((1, 4, 5, 6), "key", like)
    assert torch.equal(a, tuning.probe_input((1, 4, 5, 6), "key", like))
    assert not torch.equal(a, tuning.probe_input((1, 4, 5, 6), "other key", like))
    assert bool((a >= 0).all()) and a.is_contiguous(memory_format=torch.channels_last)
