"""Concurrent batch writes of one table that share their requests (a group commit that never waits on purpose).

Workers store features from many threads at once, one small call per tile, and each call used to be one
BatchWriteItem request of one item. The client's CPU per request (signing, HTTP, parsing: about 0.6 ms in botocore)
then bounds the throughput. :class:`BatchCoalescer` lets concurrent calls share requests:

* one shared request is in flight at a time, and up to ``concurrency`` while a full request's worth (25) waits;
* a call that finds the way free sends at once: its own requests first, then those of the calls waiting, 25 at most
  and never two with the same key (DynamoDB refuses a batch that repeats a key);
* a call that finds a request in flight (and fewer than 25 requests waiting) queues its requests and waits; when the
  request ends, the oldest waiting call sends its own and those queued after it.

So a lone call is never delayed, under load one request carries the items of many calls, and a backlog of full
requests goes out in parallel. Only the *first attempt*
is shared. Each call gets back the outcome of the requests that carried its items (:class:`BatchAttempt`): the items
left unprocessed or failed by a transient fault are sent again by the call itself, under its own retry policy, the
shared request counted as its first attempt. A permanent error of a request that carried other calls' items is charged
to no one: every call concerned sends its items again alone (returns ``None``), so an error always names the call
that caused it. Items, keys and capacity are the same as without sharing; only the number of requests changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchAttempt", "BatchCoalescer"]

#: Requests a BatchWriteItem takes at most.
BATCH_LIMIT = 25


@dataclass
class BatchAttempt:
    """The outcome of one attempt at writing some requests.

    :param sent: int = requests the attempt carried
    :param unprocessed: List[Mapping[str, Any]] = those still unwritten (left unprocessed, or all of them after a
        transient failure)
    :param failure: Optional[BaseException] = the transient failure, when the request failed as a whole
    """

    sent: int
    unprocessed: list[Mapping[str, Any]] = field(default_factory=list)
    failure: BaseException | None = None


class _Ticket:
    """One call's requests while they wait for, or ride in, shared requests (guarded by the coalescer's lock)."""

    __slots__ = ("alone", "failure", "queued", "unprocessed", "unresolved", "wake")

    def __init__(self, requests: Sequence[Mapping[str, Any]], lock: threading.Lock) -> None:
        self.wake = threading.Condition(lock)
        self.unresolved = len(requests)
        self.queued = 0
        self.unprocessed: list[Mapping[str, Any]] = []
        self.failure: BaseException | None = None
        self.alone = False


@dataclass
class _Entry:
    ticket: _Ticket
    request: Mapping[str, Any]
    key: Hashable


class BatchCoalescer:
    """Shares the first BatchWriteItem attempt of concurrent calls on one table (see the module).

    :param send: Callable[[List[Mapping[str, Any]]], BatchAttempt] = sends one request of at most 25 write requests
        and returns its outcome; raises for a permanent error
    :param key: Callable[[Mapping[str, Any]], Hashable] = the item key of a write request (no two in one batch)
    :param concurrency: int = shared requests in flight at once, at most (at least 1); more than one only while 25
        requests wait
    :raises ValueError: when concurrency is below 1
    """

    def __init__(
        self,
        send: Callable[[list[Mapping[str, Any]]], BatchAttempt],
        key: Callable[[Mapping[str, Any]], Hashable],
        concurrency: int = 4,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._send = send
        self._key = key
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self._queue: list[_Entry] = []
        self._in_flight = 0
        #: Shared requests sent so far, and the requests (items) they carried.
        self.requests_sent = 0
        self.items_sent = 0

    def first_attempt(self, requests: Sequence[Mapping[str, Any]]) -> BatchAttempt | None:
        """Send the first attempt of a call's requests, sharing requests with concurrent calls.

        :param requests: Sequence[Mapping[str, Any]] = the call's write requests: at most 25, distinct keys
        :return: Optional[BatchAttempt] = the outcome for these requests (unprocessed ones are the caller's to send
            again); None when a shared request met a permanent error: the caller sends them all again alone
        :raises ValueError: for more than 25 requests
        :raises Exception: what ``send`` raised, when the request that failed carried this call's requests only
        """
        if len(requests) > BATCH_LIMIT:
            raise ValueError(f"a call shares at most {BATCH_LIMIT} requests, got {len(requests)}")
        ticket = _Ticket(requests, self._lock)
        if not requests:
            return BatchAttempt(0)
        with self._lock:
            self._queue.extend(_Entry(ticket, request, self._key(request)) for request in requests)
            ticket.queued = len(requests)
            while ticket.unresolved:
                if ticket.queued and self._may_send():
                    self._in_flight += 1
                    batch = self._take(ticket)
                    if self._queue and self._may_send():  # a backlog: the next waiting call may go too
                        self._queue[0].ticket.wake.notify()
                    self._lock.release()
                    try:
                        self._carry(ticket, batch)
                    finally:
                        self._lock.acquire()
                else:
                    ticket.wake.wait()
        if ticket.alone:
            return None
        return BatchAttempt(len(requests), ticket.unprocessed, ticket.failure)

    def _may_send(self) -> bool:
        """Tell whether a queued call may send a request now (lock held): none in flight, or a full one waiting."""
        if self._in_flight == 0:
            return True
        return self._in_flight < self.concurrency and len(self._queue) >= BATCH_LIMIT

    def _take(self, ticket: _Ticket) -> list[_Entry]:
        """Take a batch from the queue (lock held): the ticket's own requests first, then the oldest others."""
        batch: list[_Entry] = []
        keys: set[Hashable] = set()
        for own_first in (True, False):
            for entry in self._queue:
                if len(batch) == BATCH_LIMIT:
                    break
                if (entry.ticket is ticket) == own_first and entry.key not in keys:
                    batch.append(entry)
                    keys.add(entry.key)
        taken = {id(entry) for entry in batch}
        self._queue = [entry for entry in self._queue if id(entry) not in taken]
        for entry in batch:
            entry.ticket.queued -= 1
        return batch

    def _carry(self, ticket: _Ticket, batch: list[_Entry]) -> None:
        """Send a batch (lock not held) and hand each ticket its outcome; re-raise a permanent error of its own."""
        outcome: BatchAttempt | None = None
        error: BaseException | None = None
        try:
            outcome = self._send([entry.request for entry in batch])
        except BaseException as err:  # handed to the tickets below; ours (or an interrupt) is raised again
            error = err
        shared = any(entry.ticket is not ticket for entry in batch)
        with self._lock:
            self._in_flight -= 1
            self.requests_sent += 1
            self.items_sent += len(batch)
            unprocessed = set() if outcome is None else {self._key(request) for request in outcome.unprocessed}
            woken: dict[int, _Ticket] = {}
            for entry in batch:
                owner = entry.ticket
                owner.unresolved -= 1
                if owner is not ticket and not owner.unresolved:
                    woken[id(owner)] = owner
                if outcome is None:
                    owner.alone = True
                elif entry.key in unprocessed:
                    owner.unprocessed.append(entry.request)
                    owner.failure = outcome.failure or owner.failure
            if self._queue:  # the slot is free: the oldest call still queued sends next
                woken.setdefault(id(self._queue[0].ticket), self._queue[0].ticket)
            for owner in woken.values():
                owner.wake.notify()
        if error is not None and (not shared or not isinstance(error, Exception)):
            raise error
