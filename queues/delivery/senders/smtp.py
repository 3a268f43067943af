"""The SMTP sender: a pool of open connections per (source IP, destination host) and `deliver()`, which sends a
batch of messages for one destination over many connections at once.

Each `deliver()` call starts up to `concurrency` lanes (asyncio tasks). A lane takes a connection from the pool
(an idle one, or a new one: MX hosts in preference order, the next host on a connection failure, hosts that just
refused or timed out tried last), sends messages one after another on it, and gives it back. Connections stay open
across calls (and RQ jobs, see `queues.delivery.state`) until `max_messages_per_connection` (then QUIT and a new
one) or `idle_timeout`. With 50 ms of reply latency one connection carries ~10 messages a second, so throughput
comes from many lanes, bounded by `max_per_destination` and the caller's `concurrency` (throttles).

A host this process has no recent proof of (no connection to it in PROVEN_SECONDS) gets one connection first, the
*probe*; the other lanes wait for it and connect only when it succeeded, so a host that answers 421 at the greeting
or never greets gets one connection per process, not one per lane. The circuit breaker (`queues.delivery.health`,
shared through Redis) is read once per batch: hosts marked down are not tried, and when every host of the
destination is down the batch defers at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings

from .. import health
from ..endpoint import OPPORTUNISTIC, REQUIRED, ConnectFailed, Endpoint, NotSent, Timeouts, address_family_matches
from ..limits import PairGate
from ..mx import Destination, resolve_host
from ..result import CONNECT, ENVELOPE, MAIL_FROM, SendResult

logger = logging.getLogger(__name__)

HOST_DOWN_SECONDS = 60  # a host that refused or timed out is tried after the others for this long (in this process)
SLOT_WAIT_SECONDS = 0.25  # a batch with no connection slot of its pair free looks again after this long
RATE_WAIT_MAX_SECONDS = 60  # a batch waiting longer than this for its pair's message rate gives the rest back
PROVEN_SECONDS = 300  # a host that took a connection this recently gets many at once; otherwise the first opens alone
UNVERIFIED_RECHECK_SECONDS = 3600  # opportunistic TLS: how long a certificate that failed verification is not checked
TLS_BROKEN_RECHECK_SECONDS = 3600  # opportunistic TLS: how long a host whose TLS handshake failed gets plain text


@dataclass
class OutboundMessage:
    """One message to send: one envelope recipient, data already signed with CRLF line endings (dot-stuffing is
    the sender's job)."""

    id: object
    mail_from: str
    rcpt_to: str
    data: bytes


def _timeouts() -> Timeouts:
    return Timeouts(
        connect=settings.SMTP_CONNECT_TIMEOUT, command=settings.SMTP_COMMAND_TIMEOUT, data=settings.SMTP_DATA_TIMEOUT
    )


class ConnectionPool:
    """Open SMTP connections kept per (source IP, host, port, EHLO name, TLS policy, AUTH user).

    Use from one event loop. `max_per_destination` bounds the connections open at once per key in this process.
    """

    def __init__(self, max_per_destination=None, max_messages_per_connection=None, idle_timeout=None):
        self.max_per_destination = max_per_destination or settings.SMTP_MAX_CONNECTIONS_PER_DESTINATION
        self.max_messages_per_connection = max_messages_per_connection or settings.SMTP_MAX_MESSAGES_PER_CONNECTION
        self.idle_timeout = settings.SMTP_IDLE_TIMEOUT if idle_timeout is None else idle_timeout
        self._idle: dict[tuple, list[Endpoint]] = collections.defaultdict(list)
        self._open: dict[tuple, int] = collections.defaultdict(int)
        self._conditions: dict[tuple, asyncio.Condition] = {}
        self._users: dict[tuple, int] = collections.defaultdict(int)  # tasks holding or waiting for a key's lock
        self._down_until: dict[tuple, float] = {}
        self._proven: dict[tuple, float] = {}  # (host, port) -> when a connection to it last succeeded
        self._probes: dict[tuple, asyncio.Future] = {}  # (host, port) -> the first connection's outcome, while open
        self._leases: dict[str, PairGate] = {}  # connection slots (limits.PairGate) held by open connections
        self._unverified_until: dict[tuple, float] = {}  # (host, port) whose certificate failed: not checked till
        self._tls_broken_until: dict[tuple, float] = {}  # (host, port) whose TLS handshake failed: plain text till
        self._closing: set[asyncio.Task] = set()
        self.connections_opened = 0  # counters for tests and benchmarks
        self.messages_sent = 0

    def __repr__(self) -> str:
        return f"<ConnectionPool open={sum(self._open.values())} idle={sum(map(len, self._idle.values()))}>"

    @property
    def open_connections(self) -> int:
        return sum(self._open.values())

    # -- the batch entry point --------------------------------------------------------------------------------------

    async def deliver(
        self,
        messages: list[OutboundMessage],
        *,
        destination: Destination,
        source_ip: str,
        ehlo_hostname: str,
        tls_policy: str = OPPORTUNISTIC,
        concurrency: int = 1,
        stop_when=None,
        max_messages_per_connection: int | None = None,
        gate: PairGate | None = None,
        on_result=None,
        deadline: float | None = None,
    ) -> dict[object, SendResult]:
        """Send `messages` to `destination` from `source_ip`; returns {message id: SendResult} for every message
        tried.

        `tls_policy` "required" (or a relay's tls_required) verifies certificates and defers rather than send in
        plain text or to an unverified host; "opportunistic" uses STARTTLS when offered without verification.
        Results are the replies as they came (unclassified: the caller classifies each once). `stop_when(result)`:
        the caller's test of a result that is not a delivery (a rate-limit reply, by its classification) after which
        the batch takes no more messages: those not tried get no result (the caller gives them back unsent).
        `max_messages_per_connection` lowers the pool's limit for this batch (a throttle rule). `gate`: the
        (source IP, provider) pair's node-wide connection slots and message rates (`queues.delivery.limits`), taken
        when a connection opens and as messages go out. `on_result(id,
        result)` is called (on this loop) as each result comes, so the caller can record it before the batch ends;
        past `deadline` (time.monotonic()) no new transaction starts: the messages left get no result.
        """
        if not messages:
            return {}
        if destination.error is not None:
            return {message.id: destination.error for message in messages}
        policy = REQUIRED if (tls_policy == REQUIRED or destination.tls_required) else OPPORTUNISTIC
        batch = _Batch(self, messages, destination, source_ip, ehlo_hostname, policy, stop_when)
        batch.gate = gate
        batch.on_result, batch.deadline = on_result, deadline
        batch.health = await asyncio.to_thread(health.read, destination.hosts)
        if not batch.ordered_hosts():  # every host's breaker is open: defer without connecting
            result = batch.breaker_result()
            return {message.id: result for message in messages}
        if max_messages_per_connection:
            batch.max_messages = min(batch.max_messages, int(max_messages_per_connection))
        lanes = max(1, min(int(concurrency or 1), len(messages), self.max_per_destination))
        batch.active = lanes
        await asyncio.gather(*(batch.lane() for _ in range(lanes)))
        return batch.results

    # -- connections ------------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self, key):
        """`async with self._locked(key) as condition`: the key's lock held. Counting its users lets `close_idle`
        forget a key no task is about to use (a waiter on a forgotten Condition would never be woken)."""
        condition = self._conditions.get(key)
        if condition is None:
            condition = self._conditions[key] = asyncio.Condition()
        self._users[key] += 1
        try:
            async with condition:
                yield condition
        finally:
            self._users[key] -= 1

    async def acquire(self, batch: _Batch) -> Endpoint:
        """A connection for the batch: an idle one to any of its hosts, else a new one (hosts in order, falling back
        to the next on failure). Raises ConnectFailed with the last host's failure."""
        hosts = batch.ordered_hosts()
        for host, port in hosts:
            endpoint = await self._take_idle(batch.key(host, port))
            if endpoint is not None:
                return endpoint
        failure: ConnectFailed | None = None
        for host, port in hosts:
            try:
                endpoint = await self._open_to(batch, host, port)
            except ConnectFailed as error:
                failure = error
                if error.host_down:
                    self._down_until[(batch.source_ip, host, port)] = time.monotonic() + HOST_DOWN_SECONDS
                    if not error.probed:  # a lane that waited on the probe: the prober counted it already
                        await asyncio.to_thread(health.mark_down, host, port, error.result.smtp_output)
                if not error.next_host:
                    break
                continue
            if batch.health.pop((host, port), None) is not None:  # half-open, and it answered: close the breaker
                await asyncio.to_thread(health.mark_up, host, port)
            return endpoint
        raise failure

    async def _take_idle(self, key) -> Endpoint | None:
        async with self._locked(key):
            idle = self._idle[key]
            while idle:
                endpoint = idle.pop()
                if endpoint.usable and time.monotonic() - endpoint.last_used < self.idle_timeout:
                    endpoint.reused = True
                    return endpoint
                self._discard(key, endpoint)
        return None

    async def _open_to(self, batch: _Batch, host: str, port: int) -> Endpoint:
        key = batch.key(host, port)
        while True:
            async with self._locked(key) as condition:
                while self._open[key] >= self.max_per_destination:
                    if self._idle[key]:
                        endpoint = self._idle[key].pop()
                        if endpoint.usable:
                            endpoint.reused = True
                            return endpoint
                        self._discard(key, endpoint)
                        continue
                    await condition.wait()
                probe = self._probes.get((host, port))
                if probe is None:
                    self._open[key] += 1
                    proven = self._proven.get((host, port), -PROVEN_SECONDS) > time.monotonic() - PROVEN_SECONDS
                    if not proven:  # this lane is the probe: the others wait for its outcome
                        probe = self._probes[(host, port)] = asyncio.get_running_loop().create_future()
                    else:
                        probe = None
                    break
            failure = await asyncio.shield(probe)  # another lane is probing the host
            if failure is not None:
                raise ConnectFailed(failure.result, next_host=failure.next_host, host_down=failure.host_down,
                                    probed=True)  # fmt: skip
        member = None
        try:
            if batch.gate is not None and batch.gate.max_connections:
                member = PairGate.new_member()
                if not await asyncio.to_thread(batch.gate.acquire, member):
                    member = None
                    raise NoSlot(batch.gate)
            endpoint = await self._connect(batch, host, port)
        except BaseException as error:
            async with self._locked(key) as condition:
                self._open[key] -= 1
                condition.notify()
            if member is not None:
                await asyncio.to_thread(batch.gate.release, member)
            if probe is not None:
                del self._probes[(host, port)]
                failed = isinstance(error, ConnectFailed) and not isinstance(error, NoSlot)
                probe.set_result(error if failed else None)  # cancelled, or no slot: let the others try
            if not isinstance(error, NoSlot):
                self._proven.pop((host, port), None)
            raise
        if member is not None:
            endpoint.slot = (batch.gate, member)
            self._leases[member] = batch.gate
        if probe is not None:
            del self._probes[(host, port)]
            probe.set_result(None)
        self._proven[(host, port)] = time.monotonic()
        self.connections_opened += 1
        return endpoint

    async def _connect(self, batch: _Batch, host: str, port: int) -> Endpoint:
        addresses = batch.destination.addresses.get(host)
        if addresses is None:
            addresses = await asyncio.to_thread(resolve_host, host) or [host]  # unknown to DNS: the system's resolver
        usable = [address for address in addresses if address_family_matches(batch.source_ip, address)]
        if not usable:
            text = f"no address of {host} is reachable from {batch.source_ip} ({', '.join(addresses)})"
            raise ConnectFailed(SendResult(None, "4.4.4", text, stage=CONNECT, mx_host=host, source_ip=batch.source_ip))
        failure = None
        for address in usable:
            try:
                return await self._connect_address(batch, host, port, address)
            except ConnectFailed as error:
                failure = error
                if not error.host_down:
                    break  # the host answered: its other addresses would answer the same
        raise failure

    async def _connect_address(self, batch: _Batch, host: str, port: int, address: str) -> Endpoint:
        """A connection to one address. Opportunistic TLS verifies the certificate where it may succeed (to record
        a trusted connection), retries without verification when only that failed (and skips the check at that host
        for UNVERIFIED_RECHECK_SECONDS), and retries in plain text when the handshake itself failed (and goes straight
        to plain text there for TLS_BROKEN_RECHECK_SECONDS), as Postfix does at security level "may" (RFC 7435):
        encryption is a bonus there, delivery is not. A relay with credentials never gets them in plain text."""
        options = dict(
            source_ip=batch.source_ip,
            ehlo_hostname=batch.ehlo_hostname,
            tls_policy=batch.tls_policy,
            tls_cafile=settings.SMTP_TLS_CA_FILE,
            timeouts=batch.timeouts,
            username=batch.destination.username,
            password=batch.destination.password,
        )
        opportunistic = batch.tls_policy == OPPORTUNISTIC
        now = time.monotonic()
        plain = opportunistic and not batch.destination.username and self._tls_broken_until.get((host, port), 0) > now
        verify = opportunistic and self._unverified_until.get((host, port), 0) <= now
        try:
            if plain:
                endpoint = Endpoint(host, port, address, use_tls=False, **options)
                await endpoint.connect()
                return endpoint
            endpoint = Endpoint(host, port, address, tls_verify=verify, **options)
            await endpoint.connect()
            return endpoint
        except ConnectFailed as error:
            if not (opportunistic and error.tls_failed):
                raise
            failure = error
        if failure.unverified:
            self._unverified_until[(host, port)] = time.monotonic() + UNVERIFIED_RECHECK_SECONDS
            try:
                endpoint = Endpoint(host, port, address, **options)
                await endpoint.connect()
                return endpoint
            except ConnectFailed as error:
                if not error.tls_failed:
                    raise
                failure = error
        if batch.destination.username:
            raise failure  # never a relay password in plain text after the server tried TLS
        self._tls_broken_until[(host, port)] = time.monotonic() + TLS_BROKEN_RECHECK_SECONDS
        logger.info("TLS handshake with %s[%s] failed; retrying in plain text", host, address)
        endpoint = Endpoint(host, port, address, use_tls=False, **options)
        await endpoint.connect()
        return endpoint

    async def release(self, key, endpoint: Endpoint, max_messages: int | None = None) -> None:
        """Give a connection back: kept idle if usable and under the per-connection message limit, else closed."""
        async with self._locked(key) as condition:
            if endpoint.usable and endpoint.messages_sent < (max_messages or self.max_messages_per_connection):
                endpoint.last_used = time.monotonic()
                self._idle[key].append(endpoint)
            else:
                self._discard(key, endpoint)
            condition.notify()

    def _discard(self, key, endpoint: Endpoint) -> None:
        """Close a connection in the background (QUIT if it is still usable); the caller holds the key's lock."""
        self._open[key] -= 1
        task = asyncio.ensure_future(self._close(endpoint))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, endpoint: Endpoint) -> None:
        try:
            await endpoint.quit()
        finally:
            if endpoint.slot is not None:  # give its pair's connection slot back
                gate, member = endpoint.slot
                endpoint.slot = None
                self._leases.pop(member, None)
                await asyncio.to_thread(gate.release, member)

    async def renew_leases(self) -> None:
        """Keep the connection slots of this process's open connections (their leases expire with a dead worker)."""
        if self._leases:
            await asyncio.to_thread(PairGate.renew, dict(self._leases))

    async def close_idle(self, max_idle: float | None = None, now: float | None = None) -> int:
        """Close connections idle longer than `max_idle` seconds (default: idle_timeout); returns how many. Forgets
        the bookkeeping of keys with no connection left and of expired host back-offs, so that a long-running
        worker's pool stays as large as what it talks to now."""
        limit = self.idle_timeout if max_idle is None else max_idle
        now, closed = time.monotonic() if now is None else now, 0
        for key in list(self._idle):
            async with self._locked(key) as condition:
                keep = []
                for endpoint in self._idle[key]:
                    if endpoint.usable and now - endpoint.last_used < limit:
                        keep.append(endpoint)
                    else:
                        self._discard(key, endpoint)
                        closed += 1
                self._idle[key] = keep
                condition.notify_all()
        for key in list(self._conditions):
            if not self._users[key] and not self._open[key] and not self._idle[key]:
                for bookkeeping in (self._conditions, self._users, self._open, self._idle):
                    bookkeeping.pop(key, None)
        for expiries in (self._down_until, self._unverified_until, self._tls_broken_until):
            for host, until in list(expiries.items()):
                if until <= now:
                    del expiries[host]
        for host, proven in list(self._proven.items()):
            if proven <= now - PROVEN_SECONDS:
                del self._proven[host]
        return closed

    async def close(self) -> None:
        """QUIT and close every idle connection (busy ones close when released)."""
        await self.close_idle(max_idle=-1)
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)


class NoSlot(ConnectFailed):
    """Every connection slot of the batch's (source IP, provider) pair is held (by this or other workers)."""

    def __init__(self, gate: PairGate):
        text = f"all {gate.max_connections} connection(s) allowed from this source IP to {gate.provider} are in use"
        super().__init__(SendResult(None, None, text, stage=CONNECT, connect_error=True, retry_after=60),
                         next_host=False)  # fmt: skip


class _Batch:
    """One deliver() call: the shared queue of messages and the results, worked by several lanes."""

    def __init__(self, pool, messages, destination, source_ip, ehlo_hostname, tls_policy, stop_when):
        self.pool = pool
        self.queue = collections.deque(messages)
        self.destination = destination
        self.source_ip = source_ip or ""
        self.ehlo_hostname = ehlo_hostname
        self.tls_policy = tls_policy
        self.stop_when = stop_when
        self.timeouts = _timeouts()
        self.results: dict[object, SendResult] = {}
        self.active = 0
        self.retried: set = set()
        self.max_messages = pool.max_messages_per_connection
        self.halted = False  # a rate-limit reply came: take no more messages
        self.started = time.monotonic()
        self.health: dict[tuple[str, int], health.HostHealth] = {}  # the breaker's view of the hosts (deliver())
        self.gate: PairGate | None = None
        self.tokens = 0  # message-rate tokens taken from the pair's buckets and not used yet
        self._token_lock = asyncio.Lock()
        self.on_result = None  # called with (message id, result) as each result comes
        self.deadline: float | None = None  # time.monotonic() after which no new transaction starts

    def key(self, host: str, port: int) -> tuple:
        return (self.source_ip, host, port, self.ehlo_hostname, self.tls_policy, self.destination.username)

    def ordered_hosts(self) -> list[tuple[str, int]]:
        """Destination hosts in order, without those whose circuit breaker is open; those that just refused or timed
        out in this process last."""
        now, wall = time.monotonic(), time.time()
        down = self.pool._down_until
        hosts = [h for h in self.destination.hosts if not (h in self.health and self.health[h].down(wall))]
        up = [h for h in hosts if down.get((self.source_ip, *h), 0) <= now]
        return up + [h for h in hosts if h not in up]

    def breaker_result(self) -> SendResult:
        """The deferral of a batch whose every host is marked down: when the first breaker opens, and why."""
        wall = time.time()
        (host, port), state = min(self.health.items(), key=lambda item: item[1].until)
        wait = max(1, int(state.until - wall + 0.999))
        when = time.strftime("%H:%M:%S", time.gmtime(state.until))
        text = (
            f"{host}:{port} is marked down until {when} UTC after {state.failures} failure(s) in a row "
            f"({state.reason}): not tried"
        )
        return SendResult(None, None, text, stage=CONNECT, connect_error=True, mx_host=host, source_ip=self.source_ip,
                          retry_after=wait)  # fmt: skip

    def record(self, message: OutboundMessage, result: SendResult) -> None:
        self.results[message.id] = result
        if self.on_result is not None:
            self.on_result(message.id, result)
        if self.stop_when is not None and not result.accepted and not self.halted and self.stop_when(result):
            self.halted = True  # the receiver asks us to slow down: stop here
            self.queue.clear()

    async def take_token(self) -> bool:
        """One message's worth of the pair's message rates (waiting for it, up to RATE_WAIT_MAX_SECONDS)."""
        if self.gate is None or not self.gate.rates:
            return True
        async with self._token_lock:
            waited = 0.0
            while self.tokens <= 0:
                granted, wait = await asyncio.to_thread(self.gate.take, self.gate.chunk)
                self.tokens += granted
                if not granted:
                    if waited >= RATE_WAIT_MAX_SECONDS:
                        return False
                    pause = min(max(wait, 0.01), 1.0)
                    await asyncio.sleep(pause)
                    waited += pause
            self.tokens -= 1
            return True

    async def lane(self) -> None:
        endpoint, key, message = None, None, None
        try:
            while self.queue and (self.deadline is None or time.monotonic() < self.deadline):
                message = self.queue.popleft()
                if endpoint is None:
                    try:
                        endpoint = await self.pool.acquire(self)
                        key = self.key(endpoint.host, endpoint.port)
                    except NoSlot as failure:
                        if self.active > 1:  # the lanes holding slots carry the batch
                            self.queue.appendleft(message)
                            return
                        if time.monotonic() - self.started > self.timeouts.connect:
                            self._give_up(message, failure.result)
                            return
                        self.queue.appendleft(message)
                        await asyncio.sleep(SLOT_WAIT_SECONDS)  # every slot is held by other workers: wait for one
                        continue
                    except ConnectFailed as failure:
                        # a source IP that cannot be bound fails every connection alike: settle the batch now
                        self._give_up(message, failure.result, everything=failure.result.source_unusable)
                        return
                if not await self.take_token():
                    text = f"the message rate limit of {self.source_ip} is reached: not tried"
                    result = SendResult(None, None, text, stage=ENVELOPE, connect_error=True,
                                        source_ip=self.source_ip, retry_after=RATE_WAIT_MAX_SECONDS)  # fmt: skip
                    self._give_up(message, result, everything=True)
                    continue
                try:
                    result = await endpoint.send(message)
                except NotSent:
                    await self.pool.release(key, endpoint, self.max_messages)
                    endpoint = None
                    if self.halted:  # not tried: given back unsent
                        continue
                    if message.id not in self.retried:  # once, on a fresh connection
                        self.retried.add(message.id)
                        self.queue.appendleft(message)
                        continue
                    text = "connection lost before the transaction began"
                    result = SendResult(None, None, text, stage=MAIL_FROM, connect_error=True, source_ip=self.source_ip)
                self.pool.messages_sent += 1
                self.record(message, result)
                if endpoint is not None and (not endpoint.usable or endpoint.messages_sent >= self.max_messages):
                    await self.pool.release(key, endpoint, self.max_messages)
                    endpoint = None
        except Exception:  # a bug must not lose the batch: what is left defers with the error, the worker goes on
            logger.exception("SMTP lane to %s failed", self.destination.domain)
            if endpoint is not None:
                endpoint.abort()
            failure = SendResult(
                None, "4.3.0", "internal error in the SMTP sender", connect_error=True, source_ip=self.source_ip
            )
            for pending in ([message] if message is not None else []) + list(self.queue):
                if pending.id not in self.results:
                    self.record(pending, failure)
            self.queue.clear()
        finally:
            self.active -= 1
            if endpoint is not None:
                await self.pool.release(key, endpoint, self.max_messages)

    def _give_up(self, message: OutboundMessage, result: SendResult, *, everything: bool = False) -> None:
        """No connection could be had. Other lanes still connected take the rest of the queue; the last lane
        (or any lane, with `everything`) settles everything left with this failure."""
        if self.active > 1 and not everything:
            self.queue.appendleft(message)
            return
        self.record(message, result)
        while self.queue:
            self.record(self.queue.popleft(), result)
