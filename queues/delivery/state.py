"""Per-process delivery state: one ConnectionPool on one event loop in a background thread, kept across batches
and RQ jobs so that connections are reused; closed (QUIT) at worker shutdown.

Synchronous callers (RQ jobs) use `deliver(...)`, which runs `ConnectionPool.deliver` on that loop and waits. The
loop keeps running between jobs, so a server closing an idle connection is noticed, and idle connections are
reaped every few seconds. Connection reuse across jobs needs a worker that runs jobs in its own process (RQ's
`SimpleWorker`); a forking worker gets a fresh pool in each work horse (still correct, just no reuse across jobs).
After a fork the state is rebuilt, never shared.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading

from django.conf import settings

from .senders.smtp import ConnectionPool

logger = logging.getLogger(__name__)

REAP_INTERVAL_SECONDS = 5.0  # how often idle connections past SMTP_IDLE_TIMEOUT are closed
CLOSE_TIMEOUT_SECONDS = 10.0  # how long shutdown waits for QUITs

_lock = threading.Lock()
_state: DeliveryState | None = None


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop (libuv) when installed: the same asyncio API, about a tenth less CPU per message sent (`make bench`)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class DeliveryState:
    """An event loop thread and the ConnectionPool living on it."""

    def __init__(self, **pool_options):
        self.pid = os.getpid()
        self.loop = _new_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="smtp-pool", daemon=True)
        self.thread.start()
        self._ready.wait()
        self.pool: ConnectionPool = self.run(self._make_pool(pool_options))

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    async def _make_pool(self, options) -> ConnectionPool:
        pool = ConnectionPool(**options)
        self._reaper = asyncio.ensure_future(self._reap(pool))
        return pool

    async def _reap(self, pool: ConnectionPool) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL_SECONDS)
            try:
                await pool.close_idle()
                await pool.renew_leases()
            except Exception:
                logger.exception("closing idle SMTP connections or renewing their slots failed")

    def run(self, coroutine, timeout: float | None = None):
        """Run a coroutine on the pool's loop and wait for its result (cancelled if the wait is interrupted)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def deliver(self, messages, *, on_results=None, flush_messages=1, flush_seconds=1.0, **options):
        """`ConnectionPool.deliver(messages, **options)`, synchronously.

        With `on_results`, results also stream back while the batch is under way: the calling thread is woken
        when `flush_messages` results arrived or `flush_seconds` passed, and calls `on_results([(id, result), …])`
        (possibly with an empty list: a tick, e.g. to renew a lease) — so that what the receiver accepted can be
        recorded soon after its reply, not only at the end. An exception in the calling thread (a job timeout)
        cancels the batch on the loop; results that arrived are handed over first."""
        if on_results is None:
            return self.run(self.pool.deliver(messages, **options))
        stream = _Stream(flush_messages)
        future = asyncio.run_coroutine_threadsafe(self.pool.deliver(messages, on_result=stream.put, **options),
                                                  self.loop)  # fmt: skip
        future.add_done_callback(lambda _: stream.wake())
        try:
            while not future.done():
                stream.wait(flush_seconds)
                on_results(stream.take())
            results = future.result()
        except BaseException:
            future.cancel()
            raise
        finally:
            arrived = stream.take()
            if arrived:
                on_results(arrived)
        return results

    def close(self) -> None:
        """QUIT every idle connection and stop the loop thread."""
        if not self.loop.is_running():
            return
        try:
            self.run(self._shutdown(), timeout=CLOSE_TIMEOUT_SECONDS)
        except Exception:
            logger.exception("closing the SMTP connection pool failed")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(CLOSE_TIMEOUT_SECONDS)

    async def _shutdown(self) -> None:
        self._reaper.cancel()
        await self.pool.close()


class _Stream:
    """Results handed from the pool's loop thread to the thread that waits for the batch."""

    def __init__(self, wake_at: int):
        self.wake_at = max(1, int(wake_at))
        self._items = []
        self._lock = threading.Lock()
        self._ready = threading.Event()

    def put(self, message_id, result) -> None:  # on the loop thread
        with self._lock:
            self._items.append((message_id, result))
            if len(self._items) >= self.wake_at:
                self._ready.set()

    def wake(self) -> None:
        self._ready.set()

    def wait(self, timeout: float) -> None:
        self._ready.wait(timeout)

    def take(self) -> list:
        with self._lock:
            items, self._items = self._items, []
            self._ready.clear()
            return items


def get_state() -> DeliveryState:
    """This process's state, created on first use (and again in a forked child)."""
    global _state
    with _lock:
        if _state is None or _state.pid != os.getpid():
            _state = DeliveryState(
                max_per_destination=settings.SMTP_MAX_CONNECTIONS_PER_DESTINATION,
                max_messages_per_connection=settings.SMTP_MAX_MESSAGES_PER_CONNECTION,
                idle_timeout=settings.SMTP_IDLE_TIMEOUT,
            )
        return _state


def get_pool() -> ConnectionPool:
    """This process's ConnectionPool (use it only on `get_state().loop`)."""
    return get_state().pool


def deliver(messages, **options):
    """Deliver a batch over this process's pooled connections; see `ConnectionPool.deliver` and
    `DeliveryState.deliver` (results streamed back to `on_results`)."""
    return get_state().deliver(messages, **options)


def close() -> None:
    """Close this process's pool (worker shutdown; tests). The next use builds a new one."""
    global _state
    with _lock:
        state, _state = _state, None
    if state is not None and state.pid == os.getpid():
        state.close()


atexit.register(close)
