# -*- test-case-name: tests.transport.test_tcp -*-
"""Tests for mss.transport.tcp: SIP over TCP framing (RFC 3261 §18.3), keep-alives (RFC 5626
§4.4.1), connection reuse and outbound connections, with in-memory transports."""
from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.address import Address
from mss.sip.core import OptionsResponder, SipCore
from mss.sip.parser import parse
from mss.transport.shell import SipShell
from mss.transport.tcp import SipStreamFactory


def options(n: int = 1, extra: bytes = b"", content_length: bool = True) -> bytes:
    text = (f"OPTIONS sip:svc@198.51.100.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 192.0.2.1:40000;branch=z9hG4bK-tcp{n}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\n"
            f"To: <sip:svc@198.51.100.1>\r\nCall-ID: call-{n}\r\nCSeq: 1 OPTIONS\r\n")
    data = text.encode() + extra
    if content_length:
        data += b"Content-Length: 0\r\n"
    return data + b"\r\n"


def responses(data: bytes) -> list:
    out = []
    while data.strip(b"\r\n"):
        data = data.lstrip(b"\r\n")
        msg, used = parse(data, True)
        out.append(msg)
        data = data[used:]
    return out


class StreamTestCase(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.core = SipCore()
        self.core.register_user(OptionsResponder(self.core, self.reactor), ["OPTIONS"])
        self.shell = SipShell(self.core, self.reactor, bind="198.51.100.1", transports=("tcp",))
        self.factory = SipStreamFactory(self.shell, idle_timeout=60)
        self.shell.tcp_factory = self.factory

    def feed(self, proto, data: bytes) -> None:
        """Bytes from the peer, then the end of the reactor turn (when the shell sends)."""
        proto.dataReceived(data)
        self.reactor.advance(0)

    def connect(self, host="192.0.2.1", port=40000):
        proto = self.factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        proto.makeConnection(transport)
        return proto, transport


class FramingTests(StreamTestCase):

    def test_several_messages_in_one_segment(self):
        proto, transport = self.connect()
        self.feed(proto, b"".join(options(n) for n in range(4)))
        got = responses(transport.value())
        self.assertEqual([(r.status, r.call_id) for r in got], [(200, f"call-{n}") for n in range(4)])

    def test_message_byte_by_byte(self):
        proto, transport = self.connect()
        data = options(7)
        for i in range(len(data) - 1):
            self.feed(proto, data[i:i + 1])
        self.assertEqual(transport.value(), b"")
        self.feed(proto, data[-1:])
        (resp,) = responses(transport.value())
        self.assertEqual((resp.status, resp.call_id), (200, "call-7"))

    def test_split_inside_body(self):
        body = b"hello"
        data = options(3, extra=b"Content-Type: text/plain\r\n", content_length=False)
        data = data[:-2] + b"Content-Length: 5\r\n\r\n" + body
        proto, transport = self.connect()
        self.feed(proto, data[:-3])
        self.assertEqual(transport.value(), b"")
        self.feed(proto, data[-3:] + options(4))
        self.assertEqual([r.call_id for r in responses(transport.value())], ["call-3", "call-4"])

    def test_crlf_keepalives_between_messages(self):
        proto, transport = self.connect()
        self.feed(proto, b"\r\n" + options(1) + b"\r\n" + options(2))
        got = responses(transport.value())
        self.assertEqual(len(got), 2)
        self.assertFalse(transport.value().startswith(b"\r\n"))     # no pong for a single CRLF

    def test_double_crlf_ping_gets_pong(self):
        proto, transport = self.connect()
        self.feed(proto, b"\r\n\r\n")
        self.assertEqual(transport.value(), b"\r\n")
        self.assertFalse(transport.disconnecting)

    def test_missing_content_length_closes(self):
        proto, transport = self.connect()
        self.feed(proto, options(1, content_length=False))
        (resp,) = responses(transport.value())
        self.assertEqual(resp.status, 400)
        self.assertIn("Content-Length", resp.reason)
        self.assertTrue(transport.disconnecting)

    def test_garbage_closes_without_answer(self):
        proto, transport = self.connect()
        self.feed(proto, b"\x16\x03\x01 not sip at all\r\n\r\n")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_oversized_message_closes(self):
        self.core.max_size = 1000
        proto, transport = self.connect()
        self.feed(proto, b"OPTIONS sip:a@b SIP/2.0\r\nX: " + b"y" * 6000)
        self.assertTrue(transport.disconnecting)

    def test_other_connections_unaffected(self):
        bad, bad_transport = self.connect(port=40001)
        good, good_transport = self.connect(port=40002)
        self.feed(bad, b"garbage\r\n\r\n")
        self.feed(good, options(9))
        self.assertTrue(bad_transport.disconnecting)
        self.assertEqual(responses(good_transport.value())[0].status, 200)


class ConnectionTests(StreamTestCase):

    def test_idle_timeout(self):
        proto, transport = self.connect()
        self.reactor.advance(59)
        self.feed(proto, b"\r\n")                  # activity resets the idle timer
        self.reactor.advance(59)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_connection_lost_forgets_peer(self):
        proto, transport = self.connect()
        self.assertIn(("192.0.2.1", 40000), self.factory.by_peer)
        proto.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.factory.connections, set())
        self.assertEqual(self.factory.by_peer, {})
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_send_reuses_connection_to_peer(self):
        proto, transport = self.connect()
        self.factory.send(b"hello", Address("tcp", "192.0.2.1", 40000))
        self.assertEqual(transport.value(), b"hello")
        self.assertEqual(self.reactor.tcpClients, [])

    def test_send_opens_connection_and_flushes_queue(self):
        self.factory.send(b"one", Address("tcp", "203.0.113.9", 5060))
        self.factory.send(b"two", Address("tcp", "203.0.113.9", 5060))
        (host, port, client_factory, timeout, _), = self.reactor.tcpClients
        self.assertEqual((host, port), ("203.0.113.9", 5060))
        proto = client_factory.buildProtocol(IPv4Address("TCP", host, port))
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        proto.makeConnection(transport)
        self.assertEqual(transport.value(), b"onetwo")
        self.factory.send(b"three", Address("tcp", "203.0.113.9", 5060))
        self.assertEqual(transport.value(), b"onetwothree")
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_connect_failure_reported(self):
        failed = []
        self.shell.connection_failed = failed.append
        dest = Address("tcp", "203.0.113.9", 5060)
        self.factory.send(b"one", dest)
        (_, _, client_factory, _, _), = self.reactor.tcpClients
        client_factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.assertEqual(failed, [dest])
        self.assertEqual(self.factory.pending, {})

    def test_close_all(self):
        transports = [self.connect(port=p)[1] for p in (1, 2, 3)]
        self.factory.close_all()
        self.assertTrue(all(t.disconnecting for t in transports))
