"""Back-pressure and stage timing without a server: a lane's bound and deadline, a batcher's
queued query taken back, and exclusive stage times."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from searchkit.errors import Overloaded
from searchkit.query import timing
from searchkit.serve.admission import Lane
from searchkit.serve.batching import MicroBatcher


def test_a_full_lane_refuses_at_once_and_says_when_to_retry():
    depths: list[int] = []
    lane = Lane("rerank", workers=1, limit=2, on_depth=depths.append)
    release = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(lane.run, 30, release.wait)
        second = pool.submit(lane.run, 30, lambda: "second")
        while lane.depth < 2:
            time.sleep(0.005)
        started = time.monotonic()
        with pytest.raises(Overloaded, match="2 rerank requests are queued") as err:
            lane.run(30, lambda: "third")
        assert time.monotonic() - started < 1  # refused without waiting
        assert err.value.retry_after >= 1
        release.set()
        assert first.result() is True and second.result() == "second"
    assert lane.depth == 0 and depths[-1] == 0 and max(depths) == 2
    lane.close()


def test_work_not_started_by_the_deadline_is_cancelled_but_started_work_finishes():
    lane = Lane("search", workers=1, limit=10)
    release = threading.Event()
    ran: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        busy = pool.submit(lane.run, 0.3, lambda: release.wait(5) and ran.append("busy"))
        while lane.depth < 1:
            time.sleep(0.005)
        started = time.monotonic()
        with pytest.raises(Overloaded, match="waited 0.2 s"):
            lane.run(0.2, lambda: ran.append("late"))
        assert time.monotonic() - started < 2
        release.set()
        busy.result()  # started before its deadline passed: it finished, not refused
    lane.close()
    assert ran == ["busy"]  # the late one never ran


def test_a_batcher_gives_back_a_query_its_batch_has_not_taken():
    gate = threading.Event()

    def run(key: int, queries: list[str]) -> list[str]:
        gate.wait(5)
        return list(queries)

    batcher: MicroBatcher[str] = MicroBatcher(run, window_ms=0.1, max_batch=1, workers=1)
    first, _ = batcher.enqueue("first", 1)
    while batcher.stats.batches < 1:  # the worker holds "first"
        time.sleep(0.005)
    second, take_back = batcher.enqueue("second", 1)
    assert take_back() is True and take_back() is False
    gate.set()
    assert first.result(5) == "first" and not second.done()
    batcher.close()
    assert batcher.stats.queries == 1


def test_stage_times_are_exclusive_and_only_recorded_when_asked():
    seen: list[tuple[str, float]] = []
    with timing.stage("embed"):  # nobody records: a no-op
        pass
    with timing.recording(lambda name, seconds: seen.append((name, seconds))):
        with timing.stage("retrieve"):
            time.sleep(0.05)
            with timing.stage("fetch"):
                time.sleep(0.1)
    times = dict(seen)
    assert [name for name, _ in seen] == ["fetch", "retrieve"]
    assert times["fetch"] >= 0.1 and 0.05 <= times["retrieve"] < 0.15  # fetch not counted twice
    with timing.stage("rerank"):  # recording ended with the block
        pass
    assert len(seen) == 2
