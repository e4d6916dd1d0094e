# -*- test-case-name: tests.transport.test_shell -*-
"""Tests for mss.transport.shell and mss.transport.udp: the thin Twisted shell moves bytes
between sockets and the sans-I/O core and keeps one delayed call at the core's deadline."""
from __future__ import annotations

import socket

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from mss.sip.address import Address
from mss.sip.core import OptionsResponder, SipCore
from mss.sip.parser import parse
from mss.transport.shell import SipShell, route_source_address
from mss.transport.udp import SipDatagramProtocol

PEER = Address("udp", "192.0.2.1", 5062)


def options(branch="z9hG4bKsh1", call_id="c1", port=5062) -> bytes:
    return (f"OPTIONS sip:svc@198.51.100.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 192.0.2.1:{port};branch={branch}\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\n"
            f"To: <sip:svc@198.51.100.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n").encode()


class FakeUDP:
    def __init__(self):
        self.sent = []

    def send(self, data, dest):
        self.sent.append((data, dest))


class ShellTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1000)
        self.core = SipCore()
        self.core.register_user(OptionsResponder(self.core, self.reactor), ["OPTIONS"])
        self.shell = SipShell(self.core, self.reactor, bind="198.51.100.1")
        self.shell.udp = FakeUDP()

    def test_response_sent_to_source(self):
        self.shell.data_received(options(), PEER)
        self.assertEqual(self.shell.udp.sent, [])           # at the end of the turn
        self.reactor.advance(0)
        (data, dest), = self.shell.udp.sent
        self.assertEqual(parse(data)[0].status, 200)
        self.assertEqual(dest, PEER)

    def test_one_flush_per_turn(self):
        """Messages read in one reactor turn are answered by one flush at its end."""
        flushes = []
        original = self.shell.flush
        self.shell.flush = lambda: (flushes.append(1), original())
        for n in range(3):
            self.shell.data_received(options(branch=f"z9hG4bKturn{n}", call_id=f"t{n}"), PEER)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)    # the end of the turn
        self.reactor.advance(0)
        self.assertEqual((len(flushes), len(self.shell.udp.sent)), (1, 3))

    def test_output_from_outside_an_input_wakes_the_shell(self):
        """A response sent from a Deferred callback (a media gateway's answer) goes out at
        the end of that turn without anyone flushing by hand."""
        self.core.send_stateless(parse(options())[0], PEER, 486)
        self.reactor.advance(0)
        (data, dest), = self.shell.udp.sent
        self.assertEqual(parse(data)[0].status, 486)

    def test_one_delayed_call_at_core_deadline(self):
        self.shell.data_received(options(), PEER)
        self.reactor.advance(0)
        (call,) = self.reactor.getDelayedCalls()
        self.assertEqual(call.getTime(), self.core.get_timer())
        # a later deadline does not add a second delayed call
        self.core.timers.call_at(self.reactor.seconds() + 100, lambda: None)
        self.reactor.advance(0)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        # an earlier one replaces it
        fired = []
        self.core.timers.call_at(self.reactor.seconds() + 1, fired.append, True)
        self.reactor.advance(0)
        (call,) = self.reactor.getDelayedCalls()
        self.assertEqual(call.getTime(), self.reactor.seconds() + 1)
        self.reactor.advance(1)
        self.assertEqual(fired, [True])
        # re-armed at the next deadline after firing
        (call,) = self.reactor.getDelayedCalls()
        self.assertEqual(call.getTime(), self.core.get_timer())

    def test_timers_run_to_empty(self):
        self.shell.data_received(options(), PEER)
        for _ in range(6):
            calls = self.reactor.getDelayedCalls()
            if not calls:
                break
            self.reactor.advance(calls[0].getTime() - self.reactor.seconds())
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertIsNone(self.core.get_timer())
        self.assertEqual(len(self.core.layer), 0)

    def test_core_exception_logged_not_raised(self):
        def broken(*args):
            raise RuntimeError("core bug")
        self.core.receive = broken
        self.shell.data_received(options(), PEER)
        self.reactor.advance(0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_timer_exception_logged_and_rearmed(self):
        def broken():
            raise RuntimeError("timer bug")
        self.core.timers.call_at(self.reactor.seconds() + 1, broken)
        self.core.timers.call_at(self.reactor.seconds() + 2, lambda: None)
        self.reactor.advance(0)
        self.reactor.advance(1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)

    def test_local_host(self):
        self.assertEqual(self.shell.local_host("203.0.113.1"), "198.51.100.1")
        self.shell.advertise = "sip.example.com"
        self.assertEqual(self.shell.local_host("203.0.113.1"), "sip.example.com")
        self.assertEqual(self.core.local_host("203.0.113.1"), "sip.example.com")

    def test_route_source_address(self):
        self.assertEqual(route_source_address("203.0.113.1", "198.51.100.1"), "198.51.100.1")
        self.assertEqual(route_source_address("127.0.0.1", "0.0.0.0"), "127.0.0.1")


class DatagramTests(SynchronousTestCase):

    def test_keepalives_and_noise_ignored(self):
        received = []

        class Shell:
            def data_received(self, data, source):
                received.append((data, source))
        proto = SipDatagramProtocol(Shell())
        for noise in (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00", b"  ", b""):
            proto.datagramReceived(noise, ("192.0.2.1", 5060))
        self.assertEqual(received, [])
        proto.datagramReceived(b"OPTIONS x", ("192.0.2.1", 5060))
        self.assertEqual(received, [(b"OPTIONS x", Address("udp", "192.0.2.1", 5060))])

    def test_send_error_reported(self):
        failed = []

        class Shell:
            def connection_failed(self, dest):
                failed.append(dest)

        class Transport:
            def write(self, data, addr):
                raise OSError("network unreachable")
        proto = SipDatagramProtocol(Shell())
        proto.transport = Transport()
        proto.send(b"x", PEER)
        self.assertEqual(failed, [PEER])


    def test_known_host_sent_on_socket(self):
        """After the port's write() accepted a host, datagrams to it go to the socket
        directly; socket errors are handled as write() handles them."""
        import errno
        failed = []

        class Shell:
            def connection_failed(self, dest):
                failed.append(dest)

        class Socket:
            def __init__(self):
                self.sent, self.error = [], None

            def sendto(self, data, addr):
                if self.error is not None:
                    raise OSError(self.error, "error")
                self.sent.append((data, addr))

        class Transport:
            def __init__(self):
                self.written, self.socket = [], Socket()

            def write(self, data, addr):
                self.written.append((data, addr))
        proto = SipDatagramProtocol(Shell())
        proto.transport = t = Transport()
        proto.send(b"a", PEER)
        proto.send(b"b", PEER)
        proto.send(b"c", Address("udp", "192.0.2.9", 5060))
        self.assertEqual(t.written, [(b"a", ("192.0.2.1", 5062)), (b"c", ("192.0.2.9", 5060))])
        self.assertEqual(t.socket.sent, [(b"b", ("192.0.2.1", 5062))])
        t.socket.error = errno.ECONNREFUSED        # ignored, as write() ignores it
        proto.send(b"d", PEER)
        self.assertEqual(failed, [])
        t.socket.error = errno.EHOSTUNREACH
        proto.send(b"e", PEER)
        self.assertEqual(failed, [PEER])


class _Collect(DatagramProtocol):
    def __init__(self):
        self.queue = defer.DeferredQueue()

    def datagramReceived(self, data, addr):
        self.queue.put(data)


class LoopbackTests(TestCase):
    """The shell on real sockets (127.0.0.1, port 0): UDP and TCP on the same port number."""

    timeout = 10

    @defer.inlineCallbacks
    def test_udp_and_tcp_on_one_port(self):
        core = SipCore()
        core.register_user(OptionsResponder(core, reactor), ["OPTIONS"])
        shell = SipShell(core, reactor, bind="127.0.0.1", port=0)
        shell.startService()
        self.addCleanup(shell.stopService)
        port = shell.sip_port
        self.assertEqual(core.ports, {"udp": port, "tcp": port})
        with socket.socket() as s:                      # TCP is listening on that number
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
        client = _Collect()
        listening = reactor.listenUDP(0, client, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        client.transport.write(options(port=listening.getHost().port), ("127.0.0.1", port))
        data = yield client.queue.get().addTimeout(5, reactor)
        self.assertEqual(parse(data)[0].status, 200)
