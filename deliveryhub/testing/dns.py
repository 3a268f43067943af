"""A real authoritative DNS server on loopback, for tests.

Tests point the code under test at ``server.address`` (``DELIVERYHUB_DNS_RESOLVERS``) and describe the world in
zone-file text, instead of mocking the resolver::

    with DNSServer() as server:
        server.set_zone("example.test", '''
            @    300 IN MX  10 mx1.example.test.
            @    300 IN TXT "v=spf1 ip4:127.0.0.2 ~all"
            mx1  300 IN A   127.0.0.1
        ''')
        server.set_ptr("127.0.0.2", "mx1.example.test")
        server.servfail("broken.test")
        server.timeout("slow.test")

The server answers like an authoritative one: AA flag, NXDOMAIN for a missing name inside a zone, NODATA with
the SOA in the authority section for an existing name without the asked type, REFUSED outside every zone, CNAME
chains (followed through every served zone) and ``*`` wildcards. UDP answers larger than the client's buffer
(512 bytes, or its EDNS payload size) come back empty with the TC flag so that the client retries over TCP,
which answers in full. One thread serves UDP and one serves TCP, on the same port; zones can be changed while it
runs. Plain Python on dnspython: no Django needed.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import textwrap
import threading
from typing import NamedTuple, Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
import dns.zone

__all__ = ["DNSServer", "Query", "txt_strings"]

logger = logging.getLogger(__name__)

#: Zone text added when a test's zone has no SOA record of its own.
DEFAULT_SOA = "@ 300 IN SOA ns.{origin} hostmaster.{origin} 1 3600 600 86400 60"
#: TTL used for records written without one.
DEFAULT_TTL = 300
#: Classic DNS limit for UDP answers to clients that do not advertise a larger EDNS buffer.
UDP_DEFAULT_PAYLOAD = 512
#: Longest CNAME chain followed in one answer.
MAX_CNAME_CHAIN = 8
#: Seconds a TCP send may block before the connection is dropped.
TCP_SEND_TIMEOUT = 5.0


class Query(NamedTuple):
    """One question the server received: ``("example.test", "MX", "udp")``."""

    qname: str
    qtype: str
    transport: str


def txt_strings(value: str, size: int = 255) -> str:
    """Return ``value`` as zone-file TXT rdata split into quoted strings of at most ``size`` characters.

    A TXT string holds at most 255 bytes, so long values (DKIM keys, big SPF records) are published as several
    strings that a verifier concatenates: ``f"selector._domainkey IN TXT {txt_strings(dkim_value)}"``.
    """
    chunks = [value[i : i + size] for i in range(0, len(value), size)] or [""]
    return " ".join('"{}"'.format(chunk.replace("\\", "\\\\").replace('"', '\\"')) for chunk in chunks)


def _name(name: str | dns.name.Name) -> dns.name.Name:
    """Return ``name`` as an absolute, lowercase dnspython name (a final dot is optional)."""
    if isinstance(name, dns.name.Name):
        return name.canonicalize()
    return dns.name.from_text(name).canonicalize()


class DNSServer:
    """An authoritative DNS server on loopback, serving UDP and TCP on one port, each in its own thread.

    ``host`` may be an IPv4 or IPv6 address; ``port=0`` picks a free port. ``host``, ``port`` and ``address``
    (``"127.0.0.1:PORT"``) are known once started. ``queries`` lists every question received as a
    :class:`Query`, in order (``queries.clear()`` is fine). Zone and fault changes are thread-safe and apply
    to the next query.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self.queries: list[Query] = []
        self._requested_port = port
        self._zones: dict[dns.name.Name, dns.zone.Zone] = {}
        self._servfail: set[dns.name.Name] = set()
        self._timeout: set[dns.name.Name] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    # -- life cycle -------------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``"host:port"`` (``"[::1]:port"`` for IPv6), the form ``DELIVERYHUB_DNS_RESOLVERS`` takes."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server threads are up."""
        return bool(self._threads)

    def start(self) -> Self:
        """Bind UDP and TCP on the same port and start serving; returns ``self``."""
        if self.running:
            raise RuntimeError("DNSServer already started")
        self._udp, self._tcp = self._bind()
        self.port = self._udp.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._threads = [
            threading.Thread(target=self._serve_udp, name=f"dns-udp-{self.port}", daemon=True),
            threading.Thread(target=self._serve_tcp, name=f"dns-tcp-{self.port}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the sockets. Safe to call twice."""
        if not self.running:
            return
        self._wake_w.send(b"x")
        for thread in self._threads:
            thread.join()
        self._threads = []
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            sock.close()
        self._udp = self._tcp = self._wake_r = self._wake_w = None
        self.port = self._requested_port

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<DNSServer {self.address} zones={sorted(z.to_text() for z in self._zones)}>"

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        """Return a UDP and a listening TCP socket bound to the same port (retrying if port 0 collides)."""
        attempts = 20 if self._requested_port == 0 else 1
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for attempt in range(attempts):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                udp.bind((self.host, self._requested_port))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, udp.getsockname()[1]))
                tcp.listen(16)
                return udp, tcp
            except OSError as error:
                udp.close()
                tcp.close()
                if error.errno != errno.EADDRINUSE or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    # -- the world as tests describe it ---------------------------------------------------------------------------

    def set_zone(self, origin: str, text: str) -> dns.zone.Zone:
        """Serve ``origin`` from zone-file ``text``, replacing any zone of that name.

        ``text`` is written as in a zone file whose ``$ORIGIN`` is ``origin`` and whose ``$TTL`` is 300; it may be
        indented (it is dedented first). A default SOA is added when the text has none. Returns the parsed zone.
        """
        origin_name = _name(origin)
        body = textwrap.dedent(text).strip("\n")
        zone = self._parse(origin_name, body)
        if zone.get_rdataset(origin_name, dns.rdatatype.SOA) is None:
            soa = DEFAULT_SOA.format(origin=origin_name.to_text())
            zone = self._parse(origin_name, f"{soa}\n{body}")
        with self._lock:
            self._zones = {**self._zones, origin_name: zone}
        return zone

    def remove_zone(self, origin: str) -> None:
        """Stop serving ``origin``; names in it answer REFUSED (unless another zone covers them)."""
        origin_name = _name(origin)
        with self._lock:
            self._zones = {name: zone for name, zone in self._zones.items() if name != origin_name}

    def set_ptr(self, address: str, hostname: str, ttl: int = DEFAULT_TTL) -> None:
        """Serve a PTR record for an IPv4 or IPv6 ``address`` in a zone of its own (the full reverse name)."""
        target = _name(hostname).to_text()
        self.set_zone(dns.reversename.from_address(address).to_text(), f"@ {ttl} IN PTR {target}")

    def servfail(self, name: str) -> None:
        """Answer SERVFAIL for ``name`` and every name below it."""
        with self._lock:
            self._servfail = self._servfail | {_name(name)}

    def timeout(self, name: str) -> None:
        """Never answer (drop) queries for ``name`` and every name below it, on UDP and TCP."""
        with self._lock:
            self._timeout = self._timeout | {_name(name)}

    def clear_faults(self, name: str | None = None) -> None:
        """Undo :meth:`servfail` and :meth:`timeout` for ``name``, or for every name when ``name`` is None."""
        with self._lock:
            if name is None:
                self._servfail, self._timeout = set(), set()
            else:
                self._servfail = self._servfail - {_name(name)}
                self._timeout = self._timeout - {_name(name)}

    @staticmethod
    def _parse(origin: dns.name.Name, text: str) -> dns.zone.Zone:
        return dns.zone.from_text(f"$TTL {DEFAULT_TTL}\n{text}\n", origin=origin, relativize=False, check_origin=False)

    # -- answering ------------------------------------------------------------------------------------------------

    def handle(self, wire: bytes, transport: str) -> bytes | None:
        """Return the wire-format answer to query ``wire`` received over ``transport``, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return self._formerr(wire)
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        qname = question.name.canonicalize()
        self.queries.append(
            Query(qname.to_text(omit_final_dot=True), dns.rdatatype.to_text(question.rdtype), transport)
        )
        with self._lock:
            zones, servfail, timeout = self._zones, self._servfail, self._timeout
        if any(qname.is_subdomain(name) for name in timeout):
            return None
        response = dns.message.make_response(query)
        if any(qname.is_subdomain(name) for name in servfail):
            response.set_rcode(dns.rcode.SERVFAIL)
        elif question.rdclass != dns.rdataclass.IN or self._zone_for(zones, qname) is None:
            response.set_rcode(dns.rcode.REFUSED)
        else:
            response.flags |= dns.flags.AA
            self._answer(zones, response, qname, question.rdtype)
        return self._to_wire(query, response, transport)

    @staticmethod
    def _zone_for(zones: dict[dns.name.Name, dns.zone.Zone], name: dns.name.Name) -> dns.zone.Zone | None:
        """Return the zone with the longest origin that contains ``name``."""
        best = None
        for origin, zone in zones.items():
            if name.is_subdomain(origin) and (best is None or len(origin) > len(best.origin)):
                best = zone
        return best

    def _answer(
        self, zones: dict[dns.name.Name, dns.zone.Zone], response: dns.message.Message, qname, rdtype: int
    ) -> None:
        """Fill ``response`` for ``qname``/``rdtype``, following CNAMEs through every served zone."""
        name = qname
        for _ in range(MAX_CNAME_CHAIN):
            zone = self._zone_for(zones, name)
            if zone is None:  # a CNAME pointed outside our zones: the client resolves the rest elsewhere
                return
            node = zone.get_node(name)
            if node is None:
                if self._is_empty_non_terminal(zone, name):
                    self._add_soa(zone, response)
                    return
                node = self._wildcard_node(zone, name)
            if node is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
                self._add_soa(zone, response)
                return
            if rdtype == dns.rdatatype.ANY:
                for rdataset in node.rdatasets:
                    response.answer.append(self._rrset(name, rdataset))
                return
            rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if rdataset is not None:
                response.answer.append(self._rrset(name, rdataset))
                return
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None:
                self._add_soa(zone, response)
                return
            response.answer.append(self._rrset(name, cname))
            name = cname[0].target.canonicalize()

    @staticmethod
    def _wildcard_node(zone: dns.zone.Zone, name: dns.name.Name):
        """Return the ``*`` node below the closest existing ancestor of (missing) ``name``, or None."""
        encloser = name.parent()
        while encloser != zone.origin and zone.get_node(encloser) is None:
            if DNSServer._is_empty_non_terminal(zone, encloser):
                break
            encloser = encloser.parent()
        return zone.get_node(dns.name.Name((b"*", *encloser.labels)))

    @staticmethod
    def _is_empty_non_terminal(zone: dns.zone.Zone, name: dns.name.Name) -> bool:
        """Whether ``name`` owns no records but names below it do (so it exists: NODATA, not NXDOMAIN)."""
        return any(owner != name and owner.is_subdomain(name) for owner in zone.nodes)

    @staticmethod
    def _rrset(name: dns.name.Name, rdataset) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype)
        rrset.update(rdataset)
        return rrset

    def _add_soa(self, zone: dns.zone.Zone, response: dns.message.Message) -> None:
        response.authority.append(self._rrset(zone.origin, zone.get_rdataset(zone.origin, dns.rdatatype.SOA)))

    @staticmethod
    def _to_wire(query: dns.message.Message, response: dns.message.Message, transport: str) -> bytes:
        """Render ``response``; over UDP, an answer too big for the client is replaced by an empty TC answer."""
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = max(UDP_DEFAULT_PAYLOAD, query.payload) if query.edns >= 0 else UDP_DEFAULT_PAYLOAD
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
            truncated.set_rcode(response.rcode())
            return truncated.to_wire(max_size=limit)

    @staticmethod
    def _formerr(wire: bytes) -> bytes | None:
        """Answer FORMERR to an unparseable query when at least its header is readable."""
        if len(wire) < 12:
            return None
        flags = dns.flags.QR | (int.from_bytes(wire[2:4], "big") & dns.flags.RD)
        return wire[:2] + (flags | dns.rcode.FORMERR).to_bytes(2, "big") + bytes(8)

    # -- transports -----------------------------------------------------------------------------------------------

    def _serve_udp(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        wire, client = self._udp.recvfrom(65535)
                        reply = self._safe_handle(wire, "udp")
                        if reply is not None:
                            self._udp.sendto(reply, client)
                    except OSError:
                        logger.debug("DNS UDP exchange failed", exc_info=True)

    def _serve_tcp(self) -> None:
        buffers: dict[socket.socket, bytearray] = {}
        with selectors.DefaultSelector() as selector:
            selector.register(self._tcp, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in selector.select():
                        if key.fileobj is self._wake_r:
                            return
                        if key.fileobj is self._tcp:
                            conn, _address = self._tcp.accept()
                            conn.settimeout(TCP_SEND_TIMEOUT)
                            buffers[conn] = bytearray()
                            selector.register(conn, selectors.EVENT_READ)
                        elif not self._serve_tcp_connection(key.fileobj, buffers[key.fileobj]):
                            selector.unregister(key.fileobj)
                            del buffers[key.fileobj]
                            key.fileobj.close()
            finally:
                for conn in buffers:
                    conn.close()

    def _serve_tcp_connection(self, conn: socket.socket, buffer: bytearray) -> bool:
        """Read what ``conn`` sent and answer each complete query; return False once the connection is done."""
        try:
            data = conn.recv(65535)
            if not data:
                return False
            buffer.extend(data)
            while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                size = int.from_bytes(buffer[:2], "big")
                wire = bytes(buffer[2 : 2 + size])
                del buffer[: 2 + size]
                reply = self._safe_handle(wire, "tcp")
                if reply is not None:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:
            logger.debug("DNS TCP exchange failed", exc_info=True)
            return False
        return True

    def _safe_handle(self, wire: bytes, transport: str) -> bytes | None:
        """:meth:`handle`, turning a bug in the test server into a logged SERVFAIL rather than a dead thread."""
        try:
            return self.handle(wire, transport)
        except Exception:
            logger.exception("DNSServer failed to answer a %s query", transport)
            if len(wire) < 12:
                return None
            return wire[:2] + (dns.flags.QR | dns.rcode.SERVFAIL).to_bytes(2, "big") + bytes(8)
