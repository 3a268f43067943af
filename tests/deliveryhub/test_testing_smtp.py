"""The test SMTP sink receives real SMTP sessions and answers as scripted."""

import smtplib
import socket
import ssl

import pytest

from deliveryhub.testing.smtp import DROP, SMTPSink

MESSAGE = b"From: a@sender.test\r\nTo: user@x.test\r\nSubject: Hello\r\n\r\nLine one\r\n.leading dot\r\n"


def connect(sink: SMTPSink, source: str = "127.0.0.2", timeout: float = 2.0) -> smtplib.SMTP:
    """Open an smtplib client to ``sink``, bound to loopback ``source`` like a delivery node's source IP."""
    return smtplib.SMTP(sink.host, sink.port, source_address=(source, 0), timeout=timeout, local_hostname="node1.test")


def test_receives_message_and_records_peer(smtp_sink):
    assert smtp_sink.connections == 0  # aiosmtpd's start-up probe is not counted
    with connect(smtp_sink) as client:
        client.sendmail("bounce@sender.test", ["user@x.test", "other@x.test"], MESSAGE)

    [message] = smtp_sink.messages
    assert message.mail_from == "bounce@sender.test"
    assert message.rcpt_tos == ["user@x.test", "other@x.test"]
    assert message.data == MESSAGE
    assert message.peer[0] == "127.0.0.2"
    assert message.ehlo == "node1.test"
    assert not message.tls
    assert message.auth_user is None
    assert message.parse()["Subject"] == "Hello"
    assert (smtp_sink.connections, smtp_sink.transactions) == (1, 1)


def test_several_transactions_on_one_connection(smtp_sink):
    with connect(smtp_sink, source="127.0.0.3") as client:
        for i in range(3):
            client.sendmail("bounce@sender.test", [f"user{i}@x.test"], MESSAGE)
    assert smtp_sink.wait_for_messages(3)[2].rcpt_tos == ["user2@x.test"]
    assert {m.peer[0] for m in smtp_sink.messages} == {"127.0.0.3"}
    assert (smtp_sink.connections, smtp_sink.transactions) == (1, 3)


def test_no_starttls_or_auth_offered_without_tls(smtp_sink):
    with connect(smtp_sink) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        assert not client.has_extn("auth")


def test_scripted_rcpt_421_then_250(smtp_sink):
    smtp_sink.script("user@x.test", ["421 4.7.0 Try again later", "250 OK"])

    with connect(smtp_sink) as client:
        client.ehlo()
        client.mail("bounce@sender.test")
        assert client.rcpt("user@x.test") == (421, b"4.7.0 Try again later")
    with connect(smtp_sink) as client:
        assert client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE) == {}

    assert smtp_sink.rcpt_attempts("user@x.test") == 2
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.connections == 2


def test_421_closes_the_connection(smtp_sink):
    smtp_sink.script("user@x.test", "421 4.7.0 Too busy")
    with connect(smtp_sink) as client:
        client.ehlo()
        client.mail("bounce@sender.test")
        client.rcpt("user@x.test")
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_scripted_550_refuses_only_that_recipient(smtp_sink):
    smtp_sink.script("gone@x.test", "550 5.1.1 No such user")
    with connect(smtp_sink) as client:
        refused = client.sendmail("bounce@sender.test", ["gone@x.test", "user@x.test"], MESSAGE)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("bounce@sender.test", ["gone@x.test"], MESSAGE)
    assert refused == {"gone@x.test": (550, b"5.1.1 No such user")}
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["user@x.test"]]


def test_scripted_data_reply(smtp_sink):
    smtp_sink.script_data("full@x.test", ["552 5.2.2 Mailbox full", "250 OK"])
    with connect(smtp_sink) as client:
        with pytest.raises(smtplib.SMTPDataError) as raised:
            client.sendmail("bounce@sender.test", ["full@x.test"], MESSAGE)
        assert (raised.value.smtp_code, raised.value.smtp_error) == (552, b"5.2.2 Mailbox full")
        client.sendmail("bounce@sender.test", ["full@x.test"], MESSAGE)
    assert len(smtp_sink.rejected) == 1
    assert len(smtp_sink.messages) == 1


def test_drop_after_data(smtp_sink):
    smtp_sink.drop_after_data("user@x.test", times=1)
    with connect(smtp_sink) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)
    assert [m.data for m in smtp_sink.unanswered] == [MESSAGE]
    assert smtp_sink.messages == []

    with connect(smtp_sink) as client:  # the retry goes through
        client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)
    assert len(smtp_sink.messages) == 1


def test_drop_in_rcpt_script(smtp_sink):
    smtp_sink.script("user@x.test", [DROP])
    with connect(smtp_sink) as client, pytest.raises(smtplib.SMTPServerDisconnected):
        client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)


def test_starttls_with_verified_self_signed_certificate(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed")
    context = ssl.create_default_context(cafile=sink.ca_cert_path)
    with smtplib.SMTP("localhost", sink.port, source_address=("127.0.0.2", 0), timeout=2) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=context)
        client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)
    [message] = sink.messages
    assert message.tls
    assert message.peer[0] == "127.0.0.2"


def test_starttls_certificate_is_valid_for_ip_address(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed")
    with connect(sink) as client:
        client.starttls(context=ssl.create_default_context(cafile=sink.ca_cert_path))
        assert client.noop()[0] == 250


def test_certificate_not_trusted_by_default(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed")
    with connect(sink) as client, pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(context=ssl.create_default_context())


def test_require_tls(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed", require_tls=True)
    with connect(sink) as client:
        client.ehlo()
        assert client.mail("bounce@sender.test")[0] == 530
        client.starttls(context=ssl.create_default_context(cafile=sink.ca_cert_path))
        client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)
    assert sink.messages[0].tls


def test_auth_only_after_starttls(smtp_sink_factory):
    sink = smtp_sink_factory(tls_cert="self-signed", auth={"relay": "s3cret"})
    with connect(sink) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        assert client.mail("bounce@sender.test")[0] == 530
        client.starttls(context=ssl.create_default_context(cafile=sink.ca_cert_path))
        client.ehlo()
        assert client.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("relay", "wrong")
        client.login("relay", "s3cret")
        client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)
    assert sink.messages[0].auth_user == "relay"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_mechanisms_without_tls(smtp_sink_factory, mechanism):
    sink = smtp_sink_factory(auth={"relay": "s3cret"})
    with connect(sink) as client:
        client.ehlo()
        assert mechanism in client.esmtp_features["auth"].split()
        client.user, client.password = "relay", "s3cret"
        authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
        assert client.auth(mechanism, authobject, initial_response_ok=False)[0] == 235
        client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)
    assert sink.messages[0].auth_user == "relay"


def test_reply_delay_beyond_client_timeout(smtp_sink_factory):
    sink = smtp_sink_factory(reply_delay=1.0)
    with connect(sink, timeout=0.3) as client:
        client.ehlo()
        client.mail("bounce@sender.test")
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.rcpt("user@x.test")
    assert sink.messages == []


def test_reply_delay_within_client_timeout(smtp_sink_factory):
    sink = smtp_sink_factory(reply_delay=0.05)
    with connect(sink, timeout=1) as client:
        client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)
    assert len(sink.messages) == 1


def test_greeting_delay(smtp_sink_factory):
    sink = smtp_sink_factory(greeting_delay=1.0)
    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        connect(sink, timeout=0.2)
    assert sink.connections == 1


def test_wait_for_messages_times_out(smtp_sink):
    with pytest.raises(TimeoutError):
        smtp_sink.wait_for_messages(1, timeout=0.05)


def test_context_manager_restart_and_reset():
    sink = SMTPSink()
    with sink:
        port = sink.port
        with connect(sink) as client:
            client.sendmail("bounce@sender.test", ["user@x.test"], MESSAGE)
    sink.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    with sink:
        assert sink.port
        assert len(sink.messages) == 1
        sink.reset()
        assert (sink.messages, sink.connections, sink.transactions) == ([], 0, 0)
