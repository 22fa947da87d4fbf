"""``gc_paused``: no automatic garbage collection while a batch or a sync's read runs, counted across threads, and
the process's collector left as it was found."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from leads_pipeline.lib import memory
from leads_pipeline.lib.memory import gc_paused


@pytest.fixture
def collector():
    was = gc.isenabled()
    gc.enable()
    yield
    (gc.enable if was else gc.disable)()


def test_off_while_held_and_back_on_after_an_error(collector):
    with pytest.raises(RuntimeError):
        with gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("a sync that failed")
    assert gc.isenabled()


def test_a_batch_inside_a_sync_does_not_turn_collection_back_on(collector):
    """The read pauses collection and so does each batch landed in it: a batch that ends must not turn it back on
    in the middle of the read."""
    with gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_users_turn_it_on_only_when_the_last_leaves(collector):
    """Two syncs in threads of one process, the first ending while the second still reads."""
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with gc_paused():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with gc_paused():
            second_in.set()
            first_out.wait(10)
            seen["after the first left"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert seen == {"after the first left": False}
    assert gc.isenabled()


def test_collection_turned_off_by_the_application_stays_off(collector):
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_cycles_are_freed_while_blocks_overlap_without_end(collector, monkeypatch):
    """A service whose syncs always overlap never turns collection back on: a block that ends while another still
    runs collects when the last collection is older than COLLECT_EVERY_SECONDS."""
    monkeypatch.setattr(memory, "COLLECT_EVERY_SECONDS", 0.0)
    with gc_paused():  # another sync, still reading
        with gc_paused():
            node = _Node()
            gone = weakref.ref(node)
            del node
        assert gone() is None
        assert not gc.isenabled()


def test_no_collection_in_between_before_it_is_due(collector, monkeypatch):
    monkeypatch.setattr(memory, "COLLECT_EVERY_SECONDS", 3600.0)
    monkeypatch.setattr(memory, "_collected_at", memory.time.monotonic())
    with gc_paused():
        with gc_paused():
            node = _Node()
            gone = weakref.ref(node)
            del node
        assert gone() is not None  # still waiting for a collection
    gc.collect()
    assert gone() is None
