"""Publishing from a background thread, for callers that must not wait.

:meth:`BackgroundPublisher.submit` checks and encodes the event in the
caller's thread (a bad event raises there, at once) and queues it; one
thread per process sends the queue in order, as batches of up to 100 events
of whatever has accumulated while the previous batch was on its way. So a
burst of calls costs a few requests, not one each, and events stay in the
order they were submitted.

Nothing is dropped silently:
- a full queue makes :meth:`~BackgroundPublisher.submit` wait up to
  ``put_timeout`` and then raise :class:`QueueFull`, so a relay that is down
  for long pushes back on the caller instead of growing memory;
- a batch the relay cannot take now (unreachable, 429, 5xx, after the
  publisher's own retries) is retried, the same bytes and keys, until it
  goes through or the publisher is closed;
- a batch the relay refuses for one of its events (a channel of another
  tenant, say) is sent again one event at a time, so only the bad events
  fail; a failure goes to ``on_error`` (by default a JSON log line with the
  code and the number of events, never their data);
- at interpreter exit the queue is flushed for up to ``exit_timeout``
  seconds, and what is left is reported through ``on_error`` (a batch that
  is on its way then is reported when its attempt ends).

After ``os.fork()`` the child starts with an empty queue (the parent still
sends what it had queued) and its own thread.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable

from .errors import EdgestreamError, Problem, RelayUnreachable
from .events import MAX_BATCH_EVENTS, Event, PreparedEvent
from .publisher import Publisher

__all__ = ["BackgroundPublisher", "QueueFull"]

_log = logging.getLogger("edgestream")

#: Codes that one event of a batch causes; the others' fate is unknown until
#: they are sent without it.
_PER_EVENT_CODES = frozenset(
    {"invalid_channel", "invalid_body", "event_too_large", "channel_forbidden"}
)

ErrorHandler = Callable[[Exception, list[PreparedEvent]], None]


class QueueFull(EdgestreamError):
    """The background queue stayed full for ``put_timeout`` seconds: the
    relay has not been taking events as fast as they come."""


class BackgroundPublisher:
    """Queues events and publishes them from a background thread.

    Args:
        publisher: sends the batches (and sets the retries of each).
        max_queue: events held at most, in the queue and on their way.
        put_timeout: seconds :meth:`submit` waits for room in a full queue.
        on_error: called in the background thread with the exception and
            the events that were not delivered.
        exit_timeout: seconds the exit hook waits for the queue to drain.
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        max_queue: int = 10_000,
        put_timeout: float = 1.0,
        on_error: ErrorHandler | None = None,
        exit_timeout: float = 5.0,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.publisher = publisher
        self.max_queue = max_queue
        self.put_timeout = put_timeout
        self.on_error = on_error or _log_failure
        self.exit_timeout = exit_timeout
        self.sent = 0
        self.failed = 0
        self._reset()
        _instances.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[PreparedEvent] = deque()
        # Events ever queued, and events done with (delivered, or reported
        # failed). The queue is first in, first out, so an event is done once
        # `_finished` has passed its place in `_submitted`.
        self._submitted = 0
        self._finished = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._give_up_at: float | None = None

    @property
    def pending(self) -> int:
        """Events queued or on their way."""
        with self._cond:
            return self._submitted - self._finished

    def submit(self, event: Event) -> None:
        """Checks the event now and queues it for publishing.

        Raises:
            InvalidChannel, InvalidBody, EventTooLarge: the event is bad.
            QueueFull: no room within ``put_timeout``.
            EdgestreamError: the publisher is closed.
        """
        prepared = self.publisher.prepare(event)
        deadline = time.monotonic() + self.put_timeout
        with self._cond:
            if self._closed:
                raise EdgestreamError("the background publisher is closed")
            while self._submitted - self._finished >= self.max_queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QueueFull(
                        f"{self.max_queue} events are waiting for the relay; "
                        "this one was not queued"
                    )
                self._cond.wait(left)
            self._queue.append(prepared)
            self._submitted += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="edgestream-publisher", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until every event submitted before the call was delivered or
        reported failed (events submitted meanwhile by other threads do not
        hold it up); false if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            while self._finished < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float | None = None) -> bool:
        """Stops taking events, waits up to ``timeout`` seconds for the queue
        to drain, then reports what is left through ``on_error``. True when
        everything was delivered or reported."""
        with self._cond:
            self._closed = True
            self._give_up_at = None if timeout is None else time.monotonic() + timeout
            self._cond.notify_all()
        drained = self.flush(timeout)
        if not drained:
            with self._cond:
                left = list(self._queue)
                self._queue.clear()
                self._finished += len(left)
                self._cond.notify_all()
            if left:
                self._fail(
                    RelayUnreachable("not delivered before the publisher closed", attempts=0), left
                )
        return drained

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = [
                    self._queue.popleft() for _ in range(min(MAX_BATCH_EVENTS, len(self._queue)))
                ]
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._finished += len(batch)
                    self._cond.notify_all()

    def _deliver(self, batch: list[PreparedEvent]) -> None:
        while True:
            try:
                self.publisher.send_prepared(batch)
            except RelayUnreachable as err:
                failure: Exception = err
            except Problem as err:
                if err.retryable:
                    failure = err
                elif len(batch) > 1 and err.code in _PER_EVENT_CODES:
                    for event in batch:
                        self._deliver([event])
                    return
                else:
                    self._fail(err, batch)
                    return
            except Exception as err:
                # Whatever it was, the thread lives on for the events behind.
                self._fail(err, batch)
                return
            else:
                with self._cond:
                    self.sent += len(batch)
                return
            # The publisher's retries ran out on a failure that may pass:
            # keep the batch, and its place in the order, and try again after
            # about the longest backoff, so a relay that is down is asked
            # once per few seconds, not once per submitted event.
            wait = self.publisher.retry.max_delay * random.uniform(0.5, 1.0)
            with self._cond:
                give_up_at = self._give_up_at
            if give_up_at is not None and time.monotonic() + wait >= give_up_at:
                self._fail(failure, batch)
                return
            time.sleep(wait)

    def _fail(self, error: Exception, events: list[PreparedEvent]) -> None:
        with self._cond:
            self.failed += len(events)
        try:
            self.on_error(error, events)
        except Exception:
            # A broken handler must not stop the publishing.
            _log.exception(json.dumps({"message": "the on_error handler raised"}))


def _log_failure(error: Exception, events: list[PreparedEvent]) -> None:
    record: dict[str, object] = {"message": "events not delivered", "events": len(events)}
    if isinstance(error, Problem):
        record.update(status=error.status, code=error.code, detail=error.detail)
    else:
        record.update(reason=str(error))
    _log.error(json.dumps(record))


_instances: weakref.WeakSet[BackgroundPublisher] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for instance in list(_instances):
        instance.close(instance.exit_timeout)


def _after_fork_in_child() -> None:
    for instance in list(_instances):
        instance._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
