"""``gc_relaxed``: a sync collects garbage less often, and leaves the process's collector as it found it."""

from __future__ import annotations

import gc
import threading

import pytest

from leads_pipeline.lib.memory import RELAXED_THRESHOLD, gc_relaxed


@pytest.fixture
def thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_relaxed_while_held_and_restored_after_an_error(thresholds):
    with pytest.raises(RuntimeError):
        with gc_relaxed():
            assert gc.get_threshold() == (RELAXED_THRESHOLD, 10, 10)
            raise RuntimeError("a sync that failed")
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_users_restore_only_when_the_last_leaves(thresholds):
    """Two syncs in threads of one process, the first ending while the second still reads."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, tuple] = {}

    def first() -> None:
        with gc_relaxed():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with gc_relaxed():
            second_in.set()
            first_out.wait(10)
            seen["after the first left"] = gc.get_threshold()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen["after the first left"] == (RELAXED_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_set_by_the_application_is_kept(thresholds):
    gc.set_threshold(50_000, 20, 20)
    with gc_relaxed():
        assert gc.get_threshold() == (50_000, 20, 20)
    assert gc.get_threshold() == (50_000, 20, 20)
