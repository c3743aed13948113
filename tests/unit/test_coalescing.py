"""BatchCoalescer: concurrent calls share their first BatchWriteItem request, and no item is lost, doubled or
charged to another call's error."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from model_runner.database.coalescing import BatchAttempt, BatchCoalescer


def put(key: str) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"k": {"S": key}}}}


def key_of(request: Mapping[str, Any]) -> str:
    return str(request["PutRequest"]["Item"]["k"]["S"])


class Recorder:
    """A fake BatchWriteItem: records each request's keys; optional delay, unprocessed keys and errors."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.sent: list[list[str]] = []
        self.unprocessed: set[str] = set()
        self.fail_with: BaseException | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, chunk: list[Mapping[str, Any]]) -> BatchAttempt:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.sent.append([key_of(request) for request in chunk])
        try:
            self.release.wait(5)
            time.sleep(self.delay)
            if self.fail_with is not None:
                raise self.fail_with
            return BatchAttempt(len(chunk), [dict(r) for r in chunk if key_of(r) in self.unprocessed])
        finally:
            with self.lock:
                self.in_flight -= 1


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def queue_behind_a_request(
    pool: ThreadPoolExecutor, coalescer: BatchCoalescer, send: Recorder, calls: list[list[dict[str, Any]]]
) -> tuple[Future[BatchAttempt | None], list[Future[BatchAttempt | None]]]:
    """Send a request that hangs until ``send.release`` is set, then queue calls behind it.

    :return: the future of the call in flight (one item, ``x``) and those of the queued calls, in order
    """
    send.release.clear()
    blocker = pool.submit(coalescer.first_attempt, [put("x")])
    wait_until(lambda: len(send.sent) == 1)
    futures = [pool.submit(coalescer.first_attempt, call) for call in calls]
    wait_until(lambda: len(coalescer._queue) == sum(len(call) for call in calls))
    return blocker, futures


def test_a_lone_call_goes_out_at_once_alone() -> None:
    send = Recorder()
    coalescer = BatchCoalescer(send, key_of, concurrency=1)
    outcome = coalescer.first_attempt([put("a"), put("b")])
    assert outcome == BatchAttempt(2, [], None)
    assert send.sent == [["a", "b"]]


def test_calls_that_find_the_slot_busy_go_out_together_in_the_next_request() -> None:
    send = Recorder()
    send.release.clear()  # the first request hangs until released
    coalescer = BatchCoalescer(send, key_of, concurrency=1)
    with ThreadPoolExecutor(max_workers=11) as pool:
        first = pool.submit(coalescer.first_attempt, [put("first")])
        wait_until(lambda: len(send.sent) == 1)
        waiting = [pool.submit(coalescer.first_attempt, [put(f"w{n}a"), put(f"w{n}b")]) for n in range(10)]
        wait_until(lambda: len(coalescer._queue) == 20)
        send.release.set()
        outcomes = [first.result(5)] + [future.result(5) for future in waiting]
    assert all(outcome is not None and not outcome.unprocessed for outcome in outcomes)
    assert len(send.sent) == 2  # 11 calls, 2 requests
    assert sorted(send.sent[1]) == sorted(f"w{n}{part}" for n in range(10) for part in "ab")


def test_requests_hold_at_most_25_items_with_distinct_keys_and_each_item_goes_out_once() -> None:
    send = Recorder(delay=0.002)
    coalescer = BatchCoalescer(send, key_of, concurrency=2)
    rng = random.Random(5)
    calls = [[put(f"c{n}-{i}") for i in range(rng.randint(1, 25))] for n in range(300)]
    calls += [[put("same-key")] for _ in range(40)]  # the same key from many calls: never twice in one request
    rng.shuffle(calls)
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(coalescer.first_attempt, calls))
    assert all(outcome is not None and outcome.sent == len(call) for outcome, call in zip(outcomes, calls, strict=True))
    assert all(len(request) <= 25 and len(set(request)) == len(request) for request in send.sent)
    sent = Counter(key for request in send.sent for key in request)
    wanted = Counter(key_of(request) for call in calls for request in call)
    assert sent == wanted
    assert send.max_in_flight <= 2
    assert len(send.sent) < len(calls)  # shared
    assert coalescer.requests_sent == len(send.sent)
    assert coalescer.items_sent == sum(wanted.values())


def test_each_call_gets_back_exactly_its_own_unprocessed_items() -> None:
    send = Recorder()
    send.unprocessed = {"b1", "c0", "c1"}
    coalescer = BatchCoalescer(send, key_of, concurrency=1)
    calls = {name: [put(f"{name}{i}") for i in range(2)] for name in "abc"}
    with ThreadPoolExecutor(max_workers=4) as pool:
        blocker, futures = queue_behind_a_request(pool, coalescer, send, list(calls.values()))
        send.release.set()
        outcomes = dict(zip(calls, (future.result(5) for future in futures), strict=True))
        assert blocker.result(5) == BatchAttempt(1, [], None)
    assert len(send.sent) == 2
    assert outcomes["a"] == BatchAttempt(2, [], None)
    assert outcomes["b"] == BatchAttempt(2, [calls["b"][1]], None)
    assert outcomes["c"] == BatchAttempt(2, calls["c"], None)
    assert outcomes["c"].unprocessed[0] is calls["c"][0]  # the call's own request objects come back


def test_a_transient_failure_of_a_shared_request_hands_every_call_its_items_and_the_failure() -> None:
    send = Recorder()
    coalescer = BatchCoalescer(send, key_of, concurrency=1)
    with ThreadPoolExecutor(max_workers=4) as pool:
        blocker, futures = queue_behind_a_request(pool, coalescer, send, [[put(f"k{n}")] for n in range(3)])
        failure = ConnectionError("reset")

        def fail_second(chunk: list[Mapping[str, Any]]) -> BatchAttempt:
            return BatchAttempt(len(chunk), list(chunk), failure) if len(chunk) == 3 else BatchAttempt(len(chunk))

        coalescer._send = fail_second
        send.release.set()
        assert blocker.result(5) == BatchAttempt(1, [], None)
        for number, future in enumerate(futures):
            outcome = future.result(5)
            assert outcome is not None
            assert [key_of(r) for r in outcome.unprocessed] == [f"k{number}"]
            assert outcome.failure is failure


def test_a_permanent_error_is_raised_to_the_only_call_in_its_request() -> None:
    send = Recorder()
    send.fail_with = ValueError("item too large")
    coalescer = BatchCoalescer(send, key_of, concurrency=1)
    with pytest.raises(ValueError, match="item too large"):
        coalescer.first_attempt([put("a")])
    send.fail_with = None
    assert coalescer.first_attempt([put("b")]) == BatchAttempt(1, [], None)  # the slot was given back


def test_a_permanent_error_of_a_shared_request_is_charged_to_no_call() -> None:
    send = Recorder()
    coalescer = BatchCoalescer(send, key_of, concurrency=1)
    with ThreadPoolExecutor(max_workers=4) as pool:
        blocker, futures = queue_behind_a_request(pool, coalescer, send, [[put(f"k{n}")] for n in range(3)])
        send.fail_with = ValueError("one bad item")
        send.release.set()
        with pytest.raises(ValueError):
            blocker.result(5)
        assert [future.result(5) for future in futures] == [None, None, None]  # each sends its items again alone


def test_an_interrupt_in_a_shared_request_is_raised_and_releases_the_others() -> None:
    send = Recorder()
    send.release.clear()
    coalescer = BatchCoalescer(send, key_of, concurrency=1)
    with ThreadPoolExecutor(max_workers=3) as pool:
        blocker = pool.submit(coalescer.first_attempt, [put("x")])
        wait_until(lambda: len(send.sent) == 1)
        one = pool.submit(coalescer.first_attempt, [put("a")])
        wait_until(lambda: len(coalescer._queue) == 1)
        two = pool.submit(coalescer.first_attempt, [put("b")])
        wait_until(lambda: len(coalescer._queue) == 2)
        send.fail_with = KeyboardInterrupt()
        send.release.set()
        with pytest.raises(KeyboardInterrupt):
            blocker.result(5)
        with pytest.raises(KeyboardInterrupt):
            one.result(5)  # it sent the next request, with "b": the interrupt is raised there too
        assert two.result(5) is None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        BatchCoalescer(Recorder(), key_of, concurrency=0)
    coalescer = BatchCoalescer(Recorder(), key_of)
    with pytest.raises(ValueError):
        coalescer.first_attempt([put(str(n)) for n in range(26)])
    assert coalescer.first_attempt([]) == BatchAttempt(0)


def test_a_queued_call_waits_for_the_request_in_flight_and_no_longer() -> None:
    """The documented bound: a call that finds every slot busy waits for one request's time (per 25 items ahead)."""
    send = Recorder()
    coalescer = BatchCoalescer(send, key_of, concurrency=1)
    slow_first = threading.Event()

    def send_first_slowly(chunk: list[Mapping[str, Any]]) -> BatchAttempt:
        if not slow_first.is_set():
            slow_first.set()
            time.sleep(0.5)  # the request in flight when the others arrive
        return send(chunk)

    coalescer._send = send_first_slowly
    finished: list[float] = []
    with ThreadPoolExecutor(max_workers=12) as pool:
        started = time.monotonic()
        pool.submit(coalescer.first_attempt, [put("first")])
        assert slow_first.wait(5)
        futures = [pool.submit(coalescer.first_attempt, [put(f"q{n}")]) for n in range(10)]
        for future in futures:
            assert future.result(5) == BatchAttempt(1, [], None)
            finished.append(time.monotonic() - started)
    assert max(finished) < 0.5 + 0.4  # the slow request, then one shared request of the 10 queued calls
    assert len(send.sent) == 2


def test_a_second_request_goes_out_only_when_a_full_one_waits() -> None:
    send = Recorder()
    send.release.clear()  # every request hangs until released
    coalescer = BatchCoalescer(send, key_of, concurrency=4)
    with ThreadPoolExecutor(max_workers=40) as pool:
        futures = [pool.submit(coalescer.first_attempt, [put("first")])]
        wait_until(lambda: len(send.sent) == 1)
        futures += [pool.submit(coalescer.first_attempt, [put(f"a{n}")]) for n in range(10)]
        wait_until(lambda: len(coalescer._queue) == 10)
        time.sleep(0.1)
        assert len(send.sent) == 1  # 10 items waiting: they wait for the request in flight
        futures += [pool.submit(coalescer.first_attempt, [put(f"b{n}")]) for n in range(20)]
        wait_until(lambda: len(send.sent) == 2)  # 30 waiting: a full request goes out beside the first
        assert len(send.sent[1]) == 25 and send.max_in_flight == 2
        send.release.set()
        assert all(future.result(5) is not None for future in futures)
    assert sorted(key for request in send.sent for key in request) == sorted(
        ["first", *(f"a{n}" for n in range(10)), *(f"b{n}" for n in range(20))]
    )
