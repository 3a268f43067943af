"""The SMTP sender against real peers: aiosmtpd sinks scripted per recipient, a small PIPELINING server, and the
loopback DNS server for MX fallback. Nothing is mocked."""

import asyncio
import socket
import ssl
import time

import pytest

from queues.delivery import health, mx, state
from queues.delivery.classifier import classify_result
from queues.delivery.mx import Destination, resolve_destination
from queues.delivery.senders.smtp import ConnectionPool, OutboundMessage

EHLO = "mta1.example.test"
BODY = b"From: a@example.test\r\nTo: someone@x.test\r\nSubject: test\r\n\r\nHello\r\n"


@pytest.fixture(autouse=True)
def _fast_timeouts(settings):
    settings.SMTP_CONNECT_TIMEOUT = 3
    settings.SMTP_COMMAND_TIMEOUT = 3
    settings.SMTP_DATA_TIMEOUT = 3
    settings.SMTP_TLS_CA_FILE = ""
    health.clear()
    yield
    mx.clear_cache()
    health.clear()


def _messages(*recipients, data=BODY):
    return [
        OutboundMessage(id=index, mail_from="b-1@rp.example.test", rcpt_to=rcpt, data=data)
        for index, rcpt in enumerate(recipients)
    ]


class Classified:
    """A raw SendResult with its one classification (as the processor makes it): `status`, `category`, `action` and
    `retry_after` from the classifier, everything else from the result."""

    def __init__(self, result):
        self.result = result
        self.verdict = classify_result(result)

    def __getattr__(self, name):
        if name in ("status", "category", "action", "retry_after"):
            return getattr(self.verdict, name)
        return getattr(self.result, name)


def classified(results):
    return {key: Classified(result) for key, result in results.items()}


def deliver(destination, messages, *, source_ip="127.0.0.2", pool_options=None, **options):
    """One deliver() on a fresh pool, closed afterwards; the results classified with the defaults."""

    async def scenario():
        pool = ConnectionPool(**(pool_options or {}))
        try:
            return await pool.deliver(
                messages, destination=destination, source_ip=source_ip, ehlo_hostname=EHLO, **options
            )
        finally:
            await pool.close()

    return classified(asyncio.run(scenario()))


def relay(sink, **options):
    return Destination.for_relay("127.0.0.1", sink.port, **options)


# -- replies and their outcomes -------------------------------------------------------------------------------------


def test_delivered(smtp_sink):
    [result] = deliver(relay(smtp_sink), _messages("ok@x.test")).values()
    assert (result.status, result.code, result.enhanced, result.category) == ("delivered", 250, "2.0.0", "delivered")
    assert (result.mx_host, result.source_ip, result.connect_error) == ("127.0.0.1", "127.0.0.2", False)
    assert result.duration > 0
    [message] = smtp_sink.wait_for_messages(1)
    assert (message.mail_from, message.rcpt_tos, message.ehlo) == ("b-1@rp.example.test", ["ok@x.test"], EHLO)
    assert message.data == BODY


@pytest.mark.parametrize(
    ("reply", "status", "category", "action"),
    [
        (
            "550 5.1.1 <gone@x.test>: Recipient address rejected: User unknown",
            "bounced",
            "invalid_recipient",
            "bounce+suppress",
        ),
        ("550 5.7.1 Message rejected due to poor sender reputation", "bounced", "reputation_block", "bounce"),
        ("550 5.7.1 Access denied", "bounced", "policy", "bounce"),
        ("452 4.2.2 Mailbox over quota", "deferred", "mailbox_full", "defer"),
    ],
)
def test_rcpt_refusals_are_classified(smtp_sink, reply, status, category, action):
    smtp_sink.script("r@x.test", reply)
    results = deliver(relay(smtp_sink), _messages("r@x.test", "fine@x.test"))
    assert (results[0].status, results[0].category, results[0].action) == (status, category, action)
    assert results[0].code == int(reply[:3]) and results[0].enhanced == reply[4:9]
    assert results[1].status == "delivered"  # RSET after the refusal, same connection
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["fine@x.test"]]
    assert smtp_sink.connections == 1


def test_mailbox_full_at_end_of_data_defers(smtp_sink):
    smtp_sink.script_data("full@x.test", "552 5.2.2 Mailbox full")
    [result] = deliver(relay(smtp_sink), _messages("full@x.test")).values()
    assert (result.status, result.code, result.enhanced, result.category, result.action) == (
        "deferred",
        552,
        "5.2.2",
        "mailbox_full",
        "defer",
    )
    assert smtp_sink.messages == [] and len(smtp_sink.rejected) == 1


def test_greylisting_defers_then_delivers(smtp_sink):
    smtp_sink.script("grey@x.test", ["450 4.2.0 Greylisted, please try again in 300 seconds", "250 2.1.5 OK"])
    [first] = deliver(relay(smtp_sink), _messages("grey@x.test")).values()
    assert (first.status, first.category, first.retry_after) == ("deferred", "greylisted", 300)
    [second] = deliver(relay(smtp_sink), _messages("grey@x.test")).values()
    assert second.status == "delivered"
    assert len(smtp_sink.wait_for_messages(1)) == 1


def test_421_closes_the_connection_and_the_batch_goes_on(smtp_sink):
    smtp_sink.script("busy@x.test", ["421 4.7.0 Try again later, closing connection", "250 2.1.5 OK"])
    results = deliver(relay(smtp_sink), _messages("busy@x.test", "after@x.test"))
    assert (results[0].status, results[0].code, results[0].action) == ("deferred", 421, "defer")
    assert results[1].status == "delivered"
    assert smtp_sink.connections == 2  # the server hung up after 421: a new connection for the rest
    [again] = deliver(relay(smtp_sink), _messages("busy@x.test")).values()
    assert again.status == "delivered"


def test_rate_limit_reply_defers_and_slows(smtp_sink):
    smtp_sink.script("r@x.test", "421 4.7.28 Our system has detected an unusual rate of mail; rate limited")
    [result] = deliver(relay(smtp_sink), _messages("r@x.test")).values()
    assert (result.status, result.category, result.action) == ("deferred", "rate_limited", "defer+slow")


def test_connection_dropped_after_data(smtp_sink):
    smtp_sink.drop_after_data("lost@x.test")
    results = deliver(relay(smtp_sink), _messages("lost@x.test", "next@x.test"))
    lost = results[0]
    assert (lost.status, lost.connect_error, lost.category, lost.action) == (
        "deferred",
        True,
        "connection_error",
        "defer",
    )
    assert "end of data" in lost.text and "may have been delivered" in lost.text
    assert results[1].status == "delivered"
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["next@x.test"]]


def test_slow_reply_beyond_the_timeout_defers(settings, smtp_sink_factory):
    sink = smtp_sink_factory(reply_delay=1.5)
    settings.SMTP_COMMAND_TIMEOUT = 0.3
    started = time.monotonic()
    [result] = deliver(relay(sink), _messages("slow@x.test")).values()
    assert (result.status, result.connect_error) == ("deferred", True)
    assert "timed out" in result.text and "RCPT TO" in result.text
    assert time.monotonic() - started < 1.4
    assert sink.messages == []


def test_slow_end_of_data_reply_defers(settings, smtp_sink_factory):
    sink = smtp_sink_factory(reply_delay=0.6)
    settings.SMTP_COMMAND_TIMEOUT = 2
    settings.SMTP_DATA_TIMEOUT = 0.3
    [result] = deliver(relay(sink), _messages("slow@x.test")).values()
    assert (result.status, result.connect_error) == ("deferred", True)
    assert "end of data" in result.text


def test_sender_refused(smtp_sink_factory):
    sink = smtp_sink_factory(auth={"user": "secret"})  # MAIL without AUTH: 530 5.7.0 Authentication required
    [result] = deliver(relay(sink), _messages("r@x.test")).values()
    assert (result.status, result.code, result.category) == ("deferred", 530, "sender_config")


# -- TLS --------------------------------------------------------------------------------------------------------------


def test_opportunistic_tls_with_a_self_signed_certificate(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed")
    [result] = deliver(relay(sink), _messages("tls@x.test"), tls_policy="opportunistic").values()
    assert result.status == "delivered"
    assert result.tls_version in ("TLSv1.2", "TLSv1.3") and result.tls_verified is False
    assert sink.wait_for_messages(1)[0].tls


def test_opportunistic_tls_records_a_certificate_that_verifies(settings, smtp_sink_factory):
    """Opportunistic TLS does not insist on a valid certificate, but says when there was one (as Postfix logs
    "Trusted TLS connection"); a host whose certificate failed is not checked again on every connection."""
    sink = smtp_sink_factory(tls_cert="self-signed")
    settings.SMTP_TLS_CA_FILE = sink.ca_cert_path
    [result] = deliver(relay(sink), _messages("tls@x.test"), tls_policy="opportunistic").values()
    assert (result.status, result.tls_verified) == ("delivered", True)
    assert sink.connections == 1

    untrusted = smtp_sink_factory(tls_cert="self-signed")
    settings.SMTP_TLS_CA_FILE = ""  # the test CA no longer trusted: verification fails, delivery does not

    async def scenario():
        pool = ConnectionPool(max_messages_per_connection=1)
        try:
            return [
                await pool.deliver(
                    _messages(f"u{index}@x.test"), destination=relay(untrusted), source_ip="127.0.0.2",
                    ehlo_hostname=EHLO, tls_policy="opportunistic",
                )
                for index in range(3)
            ]  # fmt: skip
        finally:
            await pool.close()

    results = [Classified(batch[0]) for batch in asyncio.run(scenario())]
    assert [(r.status, r.tls_verified, bool(r.tls_version)) for r in results] == [("delivered", False, True)] * 3
    assert untrusted.connections == 4  # one refused certificate, then TLS without verification for a while


def test_required_tls_refuses_an_unverified_certificate(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed")
    [result] = deliver(relay(sink), _messages("tls@x.test"), tls_policy="required").values()
    assert (result.status, result.category, result.action) == ("deferred", "tls_required", "defer")
    assert "certificate" in result.text and "verif" in result.text
    assert sink.messages == [] and sink.transactions == 0


def test_required_tls_with_a_trusted_ca_is_verified(settings, smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed")
    settings.SMTP_TLS_CA_FILE = sink.ca_cert_path
    [result] = deliver(relay(sink), _messages("tls@x.test"), tls_policy="required").values()
    assert (result.status, result.tls_verified) == ("delivered", True)
    assert result.tls_version in ("TLSv1.2", "TLSv1.3")


def test_a_configured_ca_file_adds_to_the_system_store(smtp_sink_factory):
    """SMTP_TLS_CA_FILE is for a private relay's CA: public MX hosts must still verify against the system store."""
    from queues.delivery.endpoint import tls_context

    sink = smtp_sink_factory(tls_cert="self-signed")
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    for policy, verify in (("required", False), ("opportunistic", True)):
        context = tls_context(policy, sink.ca_cert_path, verify)
        assert context.cert_store_stats()["x509_ca"] == system + 1


def test_relay_requiring_tls_overrides_an_opportunistic_policy(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed")
    [result] = deliver(relay(sink, tls_required=True), _messages("tls@x.test")).values()
    assert (result.status, result.category) == ("deferred", "tls_required")


def test_no_starttls_offered(smtp_sink):
    [plain] = deliver(relay(smtp_sink), _messages("a@x.test")).values()
    assert (plain.status, plain.tls_version, plain.tls_verified) == ("delivered", None, False)
    assert not smtp_sink.messages[0].tls
    [required] = deliver(relay(smtp_sink), _messages("b@x.test"), tls_policy="required").values()
    assert (required.status, required.category) == ("deferred", "tls_required")
    assert "does not offer STARTTLS" in required.text
    assert len(smtp_sink.messages) == 1


def test_relay_auth_after_starttls(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed", auth={"relayuser": "s3cret"})
    [result] = deliver(relay(sink, username="relayuser", password="s3cret"), _messages("a@x.test")).values()
    assert result.status == "delivered"
    assert sink.wait_for_messages(1)[0].auth_user == "relayuser"
    [wrong] = deliver(relay(sink, username="relayuser", password="nope"), _messages("b@x.test")).values()
    assert (wrong.status, wrong.category) == ("deferred", "sender_config")
    assert "authentication" in wrong.text
    assert len(sink.messages) == 1


# -- source addresses, pooling, concurrency ----------------------------------------------------------------------------


@pytest.mark.parametrize("source_ip", ["127.0.0.2", "127.0.0.3"])
def test_source_address_binding(smtp_sink, source_ip):
    [result] = deliver(relay(smtp_sink), _messages("a@x.test"), source_ip=source_ip).values()
    assert result.source_ip == source_ip
    assert smtp_sink.wait_for_messages(1)[0].peer[0] == source_ip


def test_connection_reuse_within_and_across_batches(smtp_sink):
    recipients = [f"u{i}@x.test" for i in range(40)]

    async def scenario():
        pool = ConnectionPool(max_messages_per_connection=1000)
        try:
            for _ in range(3):
                results = await pool.deliver(
                    _messages(*recipients),
                    destination=relay(smtp_sink),
                    source_ip="127.0.0.2",
                    ehlo_hostname=EHLO,
                    concurrency=2,
                )
                assert all(r.accepted for r in results.values())
            return pool.connections_opened
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == 2
    assert len(smtp_sink.wait_for_messages(120)) == 120
    assert smtp_sink.connections == 2


def test_messages_per_connection_limit(smtp_sink):
    results = deliver(
        relay(smtp_sink),
        _messages(*[f"u{i}@x.test" for i in range(25)]),
        pool_options={"max_messages_per_connection": 10},
    )
    assert all(r.accepted for r in results.values())
    assert smtp_sink.connections == 3


def test_process_pool_is_kept_across_calls(smtp_sink):
    state.close()
    try:
        for index in range(3):
            results = state.deliver(
                _messages(f"u{index}@x.test"), destination=relay(smtp_sink), source_ip="127.0.0.2", ehlo_hostname=EHLO
            )
            assert results[0].accepted
        assert smtp_sink.connections == 1
        assert state.get_pool().open_connections == 1
    finally:
        state.close()
    assert state._state is None


def test_a_batch_cancelled_mid_transaction_never_returns_its_connection_to_the_pool(smtp_sink_factory):
    """RQ's job timeout cancels the batch on the pool's loop (DeliveryState.run). The connection it was using is
    mid-transaction: were it kept, the next batch would read the stale replies as its own."""
    sink = smtp_sink_factory(reply_delay=0.5)
    destination = relay(sink)
    state.close()
    try:
        delivery = state.get_state()
        pool = delivery.pool
        with pytest.raises(TimeoutError):  # what the job timeout does to the waiting worker thread
            delivery.run(
                pool.deliver(_messages("first@x.test"), destination=destination, source_ip="127.0.0.2",
                             ehlo_hostname=EHLO),
                timeout=0.2,
            )  # fmt: skip
        time.sleep(0.1)  # the cancellation runs on the pool's loop
        assert pool.open_connections == 0
        results = state.deliver(
            _messages("second@x.test"), destination=destination, source_ip="127.0.0.2", ehlo_hostname=EHLO
        )
        assert (results[0].accepted, results[0].code) == (True, 250)
        assert [m.rcpt_tos for m in sink.wait_for_messages(1)] == [["second@x.test"]]
        assert pool.connections_opened == 2
    finally:
        state.close()


def test_a_dead_pooled_connection_is_replaced(smtp_sink_factory):
    with socket.socket() as probe:  # a fixed port, so that the restarted sink is the same destination
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = smtp_sink_factory(port=port)

    async def scenario():
        pool = ConnectionPool()
        destination = Destination.for_relay("127.0.0.1", port)
        try:
            first = await pool.deliver(
                _messages("a@x.test"), destination=destination, source_ip="127.0.0.2", ehlo_hostname=EHLO
            )
            sink.stop()  # drops every connection while the pool holds one idle
            sink.start()
            second = await pool.deliver(
                _messages("b@x.test"), destination=destination, source_ip="127.0.0.2", ehlo_hostname=EHLO
            )
            return first[0], second[0], pool.connections_opened
        finally:
            await pool.close()

    first, second, opened = asyncio.run(scenario())
    assert first.accepted and second.accepted
    assert opened == 2
    assert [m.rcpt_tos for m in sink.messages] == [["a@x.test"], ["b@x.test"]]


def test_the_pool_forgets_destinations_it_no_longer_talks_to(smtp_sink):
    """A worker runs for weeks and talks to many thousands of hosts: per-host bookkeeping must not outlive the
    connections (closed idle, refused hosts' back-off expired)."""

    async def scenario():
        pool = ConnectionPool()
        try:
            for source_ip in ("127.0.0.2", "127.0.0.3"):
                await pool.deliver(
                    _messages("a@x.test"), destination=relay(smtp_sink), source_ip=source_ip, ehlo_hostname=EHLO
                )
            refused = Destination.for_relay("127.0.0.1", _closed_port())
            [result] = (
                await pool.deliver(_messages("b@x.test"), destination=refused, source_ip="127.0.0.2",
                                   ehlo_hostname=EHLO)
            ).values()  # fmt: skip
            assert result.connect_error and pool._down_until
            before = (len(pool._conditions), len(pool._open), len(pool._idle))
            assert await pool.close_idle(max_idle=-1) == 2
            await pool.close_idle(max_idle=-1, now=time.monotonic() + 3600)  # the refused host's back-off is over
            after = (len(pool._conditions), len(pool._open), len(pool._idle), len(pool._down_until))
            return before, after
        finally:
            await pool.close()

    before, after = asyncio.run(scenario())
    assert before[0] >= 2
    assert after == (0, 0, 0, 0)


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_many_connections_hide_reply_latency(smtp_sink_factory):
    sink = smtp_sink_factory(reply_delay=0.05)  # 50 ms before each RCPT and end-of-data reply
    count = 300
    started = time.monotonic()
    results = deliver(relay(sink), _messages(*[f"u{i}@x.test" for i in range(count)]), concurrency=100)
    elapsed = time.monotonic() - started
    assert all(r.accepted for r in results.values())
    assert len(sink.wait_for_messages(count)) == count
    assert sink.connections <= 100
    assert elapsed < 3.5, f"{count / elapsed:.0f} msg/s"  # one connection would need 30 s


# -- MX fallback and DNS outcomes -------------------------------------------------------------------------------------


@pytest.fixture
def mx_world(dns_server, smtp_sink, settings):
    settings.DNS_RESOLVERS = [dns_server.address]
    settings.SMTP_PORT = smtp_sink.port
    mx.clear_cache()
    dns_server.set_zone(
        "fallback.test",
        """
        @    300 IN MX 10 mx1.fallback.test.
        @    300 IN MX 20 mx2.fallback.test.
        mx1  300 IN A  127.0.0.9
        mx2  300 IN A  127.0.0.1
        """,
    )
    dns_server.set_zone("dead.test", "@ 300 IN MX 10 mx.dead.test.\nmx 300 IN A 127.0.0.9")
    dns_server.set_zone("nullmx.test", "@ 300 IN MX 0 .")
    return smtp_sink


def test_mx_fallback_to_the_next_host(mx_world):
    results = deliver(resolve_destination("fallback.test"), _messages("a@fallback.test", "b@fallback.test"))
    assert {(r.status, r.mx_host) for r in results.values()} == {("delivered", "mx2.fallback.test")}
    assert len(mx_world.wait_for_messages(2)) == 2


def test_every_host_refusing_defers_with_a_connect_error(mx_world):
    results = deliver(resolve_destination("dead.test"), _messages("a@dead.test", "b@dead.test"), concurrency=2)
    for result in results.values():
        assert (result.status, result.connect_error, result.category) == ("deferred", True, "connection_error")
        assert "mx.dead.test" in result.text and "refused" in result.text.lower()
    assert mx_world.connections == 0


def test_null_mx_never_connects(mx_world):
    results = deliver(resolve_destination("nullmx.test"), _messages("a@nullmx.test"))
    assert (results[0].status, results[0].enhanced) == ("bounced", "5.1.10")
    assert mx_world.connections == 0


# -- what goes on the wire --------------------------------------------------------------------------------------------


def test_smuggling_and_injection_never_make_an_extra_message_or_recipient(smtp_sink):
    data = (
        b"Subject: x\r\n\r\nline\r\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@x.test>\r\nDATA\r\n"
        b"smuggled\r\n.\r\nbare\n.\nlone\r.\r..dots\r\n"
    )
    messages = _messages("a@x.test", data=data) + [
        OutboundMessage(id="inj", mail_from="b@rp.test", rcpt_to="x@x.test>\r\nRCPT TO:<victim@x.test", data=BODY),
        OutboundMessage(id="inj2", mail_from="b@rp.test\r\nRCPT TO:<victim@x.test>", rcpt_to="y@x.test", data=BODY),
    ]
    results = deliver(relay(smtp_sink), messages)
    assert results[0].accepted
    assert (results["inj"].status, results["inj2"].status) == ("bounced", "bounced")
    [message] = smtp_sink.wait_for_messages(1)
    assert smtp_sink.transactions == 1 and message.rcpt_tos == ["a@x.test"]
    assert smtp_sink.rcpt_attempts("victim@x.test") == 0
    assert message.data == (
        b"Subject: x\r\n\r\nline\r\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@x.test>\r\n"
        b"DATA\r\nsmuggled\r\n.\r\nbare\r\n.\r\nlone\r\n.\r\n..dots\r\n"
    )


class PipeliningServer:
    """A minimal SMTP server offering PIPELINING that records each chunk it reads, to see how commands arrive."""

    def __init__(self, broken_starttls=False):
        self.broken_starttls = broken_starttls  # offer STARTTLS, then answer the handshake with garbage
        self.chunks: list[bytes] = []
        self.messages: list[bytes] = []
        self.connections = 0

    async def start(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader, writer):
        self.connections += 1
        writer.write(b"220 pipe.test ESMTP\r\n")
        buffer, in_data, rcpt_ok = b"", False, False
        while chunk := await reader.read(65536):
            self.chunks.append(chunk)
            buffer += chunk
            replies = []
            while True:
                if in_data:
                    end = buffer.find(b"\r\n.\r\n")
                    if end == -1:
                        break
                    self.messages.append(buffer[: end + 2])
                    buffer, in_data = buffer[end + 5 :], False
                    replies.append(b"250 2.0.0 queued\r\n")
                    continue
                if b"\r\n" not in buffer:
                    break
                line, buffer = buffer.split(b"\r\n", 1)
                verb = line[:4].upper()
                if verb == b"EHLO":
                    starttls = b"250-STARTTLS\r\n" if self.broken_starttls else b""
                    replies.append(b"250-pipe.test\r\n" + starttls + b"250-PIPELINING\r\n250 SIZE 1000000\r\n")
                elif line.upper() == b"STARTTLS" and self.broken_starttls:
                    writer.write(b"220 2.0.0 go ahead\r\n")
                    await reader.read(65536)  # the ClientHello
                    writer.write(b"this is not TLS\r\n" * 10)
                    await writer.drain()
                    writer.close()
                    return
                elif verb == b"MAIL":
                    rcpt_ok = False
                    replies.append(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    rcpt_ok = b"bad" not in line
                    replies.append(b"250 2.1.5 ok\r\n" if rcpt_ok else b"550 5.1.1 no such user\r\n")
                elif verb == b"DATA":
                    in_data = rcpt_ok
                    replies.append(b"354 go ahead\r\n" if rcpt_ok else b"554 5.5.1 no valid recipients\r\n")
                elif verb in (b"RSET", b"NOOP"):
                    replies.append(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"".join(replies) + b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    replies.append(b"502 5.5.2 what\r\n")
            if replies:
                writer.write(b"".join(replies))
                await writer.drain()
        writer.close()


def test_pipelining_when_offered():
    async def scenario():
        server = PipeliningServer()
        await server.start()
        pool = ConnectionPool()
        try:
            results = await pool.deliver(
                _messages("a@x.test", "bad@x.test", "c@x.test"),
                destination=Destination.for_relay("127.0.0.1", server.port),
                source_ip="127.0.0.2",
                ehlo_hostname=EHLO,
            )
        finally:
            await pool.close()
            await server.stop()
        return server, results

    server, results = asyncio.run(scenario())
    results = classified(results)
    assert [results[i].status for i in range(3)] == ["delivered", "bounced", "delivered"]
    assert results[1].category == "invalid_recipient"
    assert len(server.messages) == 2
    envelopes = [chunk for chunk in server.chunks if b"MAIL FROM" in chunk]
    assert len(envelopes) == 3
    for chunk in envelopes:  # MAIL, RCPT and DATA in one write
        assert b"RCPT TO:" in chunk and chunk.endswith(b"DATA\r\n")
    assert envelopes[0].startswith(b"MAIL FROM:<b-1@rp.example.test> SIZE=")
    assert envelopes[2].startswith(b"RSET\r\nMAIL FROM")  # the reset after the refusal rides along


def _deliver_to_broken_starttls(tls_policy, count=2, **pool_options):
    async def scenario():
        server = PipeliningServer(broken_starttls=True)
        await server.start()
        pool = ConnectionPool(**pool_options)
        try:
            results = await pool.deliver(
                _messages(*[f"u{index}@x.test" for index in range(count)]),
                destination=Destination.for_relay("127.0.0.1", server.port),
                source_ip="127.0.0.2",
                ehlo_hostname=EHLO,
                tls_policy=tls_policy,
            )
        finally:
            await pool.close()
            await server.stop()
        return server, classified(results)

    return asyncio.run(scenario())


def test_opportunistic_tls_falls_back_to_plain_text_after_a_failed_handshake():
    server, results = _deliver_to_broken_starttls("opportunistic")
    assert [(r.status, r.tls_version) for r in results.values()] == [("delivered", None)] * 2
    assert len(server.messages) == 2
    assert server.connections == 2  # the failed handshake, then one plain-text connection for both


def test_a_failed_handshake_is_remembered():
    """The next connections to that host go straight to plain text for a while: no failed handshake each time."""
    server, results = _deliver_to_broken_starttls("opportunistic", count=3, max_messages_per_connection=1)
    assert [r.status for r in results.values()] == ["delivered"] * 3
    assert server.connections == 4  # one failed handshake, then three plain-text connections


def test_required_tls_never_falls_back_after_a_failed_handshake():
    server, results = _deliver_to_broken_starttls("required")
    assert {(r.status, r.category) for r in results.values()} == {("deferred", "tls_required")}
    assert server.messages == []
