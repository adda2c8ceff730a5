"""pipeline.parallel.computed_in_order: results in order, the first item alone or not, a bounded look-ahead."""

from __future__ import annotations

import threading

import pytest

from pipeline.parallel import computed_in_order


class Recorder:
    """A compute that records which items started and how many ran at once; item 'boom' raises."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.started: list[object] = []
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()
        self.gate = gate

    def __call__(self, item: object) -> object:
        with self.lock:
            self.started.append(item)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.gate is not None and item != 0:
                assert self.gate.wait(10), "the gate was never opened"
            if item == "boom":
                raise ValueError("boom")
            return ("done", item)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize("ahead", [0, 1, 2, 5])
def test_results_come_in_the_items_order_whatever_the_look_ahead(ahead):
    recorder = Recorder()
    assert list(computed_in_order(recorder, range(12), ahead)) == [("done", i) for i in range(12)]
    assert sorted(recorder.started) == list(range(12))  # each item computed once
    assert list(computed_in_order(recorder, [], ahead)) == []


def test_without_look_ahead_an_item_is_computed_only_when_its_result_is_asked_for():
    recorder = Recorder()
    results = computed_in_order(recorder, range(5), 0)
    assert next(results) == ("done", 0) and recorder.started == [0]
    assert next(results) == ("done", 1) and recorder.started == [0, 1]


def test_the_first_item_runs_alone_then_at_most_ahead_more_start_before_their_turn():
    gate = threading.Event()
    recorder = Recorder(gate)
    results = computed_in_order(recorder, range(10), 2)
    assert next(results) == ("done", 0)
    # Items 1 and 2 started beside the caller's use of item 0, and no more: they wait at the gate.
    for _ in range(200):
        if len(recorder.started) == 3:
            break
        threading.Event().wait(0.01)
    assert recorder.started[0] == 0 and sorted(recorder.started) == [0, 1, 2]
    gate.set()
    assert list(results) == [("done", i) for i in range(1, 10)]
    assert recorder.most_at_once <= 2  # never more than ``ahead`` at once after the first


def test_without_the_first_alone_the_first_items_start_at_once():
    gate = threading.Event()
    recorder = Recorder(gate)
    results = computed_in_order(recorder, range(1, 8), 3, first_alone=False)
    assert recorder.started == []  # nothing starts before the first result is asked for
    # Items 1-3 all started while item 1's result is awaited (none of them alone), and no fourth.
    first = []
    reader = threading.Thread(target=lambda: first.append(next(results)))
    reader.start()
    for _ in range(200):
        if len(recorder.started) == 3:
            break
        threading.Event().wait(0.01)
    assert sorted(recorder.started) == [1, 2, 3] and recorder.running == 3
    gate.set()
    reader.join(10)
    assert first == [("done", 1)]
    assert list(results) == [("done", i) for i in range(2, 8)]
    assert recorder.most_at_once == 3


def test_an_error_is_raised_at_its_item_and_the_earlier_results_are_given_first():
    recorder = Recorder()
    items = [0, 1, "boom", 3, 4, 5, 6, 7]
    seen = []
    with pytest.raises(ValueError, match="boom"):
        for result in computed_in_order(recorder, items, 2):
            seen.append(result)
    assert seen == [("done", 0), ("done", 1)]
    assert 7 not in recorder.started  # items past the look-ahead never start


def test_returning_freed_memory_collects_what_a_stage_left_in_reference_cycles():
    import gc
    import weakref

    from pipeline.parallel import return_freed_memory

    class Held:
        pass

    gc.disable()  # no automatic collection between here and the call
    try:
        cycle = Held()
        cycle.me = cycle  # type: ignore[attr-defined]
        alive = weakref.ref(cycle)
        del cycle
        assert alive() is not None  # reference counting alone cannot free a cycle
        return_freed_memory()
        assert alive() is None
    finally:
        gc.enable()
