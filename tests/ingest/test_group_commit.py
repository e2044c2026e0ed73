"""Group commit: inputs of many threads share transactions; each caller gets its own answer."""
from __future__ import annotations

import threading

import pytest

from ingest.group_commit import GroupCommit


class Recorder:
    """A commit that records its batches; `gate` holds the first transaction open."""

    def __init__(self, fail: set | None = None) -> None:
        self.batches: list[list] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = fail or set()

    def __call__(self, items: list) -> list:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        if self.fail & set(items):
            raise ValueError(f"cannot store {sorted(self.fail & set(items))}")
        return [f"stored {i}" for i in items]


def run_all(group: GroupCommit, items: list) -> tuple[dict, list[threading.Thread]]:
    answers: dict = {}

    def one(item):
        try:
            answers[item] = group(item)
        except Exception as exc:  # the caller's own exception
            answers[item] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in items]
    for t in threads:
        t.start()
    return answers, threads


def test_a_lone_input_is_written_at_once_in_a_transaction_of_its_own():
    rec = Recorder()
    group = GroupCommit(rec, delay=30)  # nothing is announced: the long delay never applies
    assert group("a") == "stored a"
    assert rec.batches == [["a"]]


def test_inputs_that_arrive_during_a_transaction_share_the_next_and_each_gets_its_own_outcome():
    rec = Recorder()
    rec.gate.clear()
    group = GroupCommit(rec, delay=0)
    answers, first = run_all(group, ["first"])
    assert rec.entered.wait(10)  # the first transaction is open
    more, threads = run_all(group, ["b", "c", "d"])
    while len(group._waiting) < 3:  # all three are waiting for the open transaction
        threading.Event().wait(0.01)
    rec.gate.set()
    for t in first + threads:
        t.join(10)
    assert rec.batches[0] == ["first"]
    assert sorted(rec.batches[1]) == ["b", "c", "d"] and len(rec.batches) == 2
    assert answers["first"] == "stored first"
    assert more == {"b": "stored b", "c": "stored c", "d": "stored d"}


def test_most_caps_a_transaction():
    rec = Recorder()
    rec.gate.clear()
    group = GroupCommit(rec, most=2, delay=0)
    _, first = run_all(group, [0])
    assert rec.entered.wait(10)
    answers, threads = run_all(group, [1, 2, 3, 4, 5])
    while len(group._waiting) < 5:
        threading.Event().wait(0.01)
    rec.gate.set()
    for t in first + threads:
        t.join(10)
    assert [len(b) for b in rec.batches] == [1, 2, 2, 1]
    assert answers == {i: f"stored {i}" for i in range(1, 6)}


def test_a_failing_input_fails_only_its_own_caller():
    rec = Recorder(fail={"bad"})
    rec.gate.clear()
    group = GroupCommit(rec, delay=0)
    _, first = run_all(group, ["first"])
    assert rec.entered.wait(10)
    answers, threads = run_all(group, ["good", "bad", "fine"])
    while len(group._waiting) < 3:
        threading.Event().wait(0.01)
    rec.gate.set()
    for t in first + threads:
        t.join(10)
    assert answers["good"] == "stored good" and answers["fine"] == "stored fine"
    assert isinstance(answers["bad"], ValueError) and "bad" in str(answers["bad"])
    assert sorted(rec.batches[1]) == ["bad", "fine", "good"]  # tried together, then one by one
    assert sorted(map(tuple, rec.batches[2:])) == [("bad",), ("fine",), ("good",)]


def test_a_lone_failure_raises_in_its_caller():
    group = GroupCommit(Recorder(fail={"x"}))
    with pytest.raises(ValueError, match="cannot store"):
        group("x")
    assert group("y") == "stored y"  # the group is not left writing


def test_a_transaction_waits_for_an_input_another_thread_announced():
    rec = Recorder()
    group = GroupCommit(rec, delay=30)
    announced, release = threading.Event(), threading.Event()
    answers: dict = {}

    def reader() -> None:  # announces its input, reads it for a while, then hands it in
        with group.expect():
            announced.set()
            release.wait(10)
            answers["late"] = group("late")

    t = threading.Thread(target=reader)
    t.start()
    assert announced.wait(10)
    leader = threading.Thread(target=lambda: answers.__setitem__("early", group("early")))
    leader.start()
    threading.Event().wait(0.2)
    assert rec.batches == []  # the transaction waits for the announced input
    release.set()
    t.join(10)
    leader.join(10)
    assert rec.batches == [["early", "late"]]
    assert answers == {"early": "stored early", "late": "stored late"}


def test_an_announced_input_never_handed_in_stops_the_wait():
    rec = Recorder()
    group = GroupCommit(rec, delay=30)
    announced, release = threading.Event(), threading.Event()

    def refused() -> None:  # announced, then refused (a bad signature): never handed in
        with group.expect():
            announced.set()
            release.wait(10)

    t = threading.Thread(target=refused)
    t.start()
    assert announced.wait(10)
    answers: dict = {}
    leader = threading.Thread(target=lambda: answers.__setitem__("x", group("x")))
    leader.start()
    threading.Event().wait(0.2)
    assert rec.batches == []
    release.set()
    t.join(10)
    leader.join(10)  # well before the 30 s delay
    assert not leader.is_alive() and answers == {"x": "stored x"}
