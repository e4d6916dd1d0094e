# -*- test-case-name: tests.sip.test_core -*-
"""Tests for mss.sip.core: the UAS checks, dispatch to transaction users, Via stamping and
response routing (RFC 3261 §8.2, §11, §18.2.1, §18.2.2; RFC 3581), driven without sockets."""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from mss.sip.address import Address
from mss.sip.core import ALLOW, OptionsResponder, SipCore
from mss.sip.transaction import response_address
from mss.sip.message import make_response
from mss.sip.parser import parse

PEER = Address("udp", "192.0.2.10", 5062)


def request(method="OPTIONS", *, branch="z9hG4bKabc", via=None, extra=(), max_forwards=70,
            cseq_method=None, uri="sip:svc@198.51.100.1", call_id="cid-1", drop=()) -> bytes:
    headers = [
        ("Via", via or f"SIP/2.0/UDP 192.0.2.10:5062;branch={branch};rport"),
        ("Max-Forwards", str(max_forwards)),
        ("From", "<sip:alice@example.com>;tag=f1"),
        ("To", "<sip:svc@198.51.100.1>"),
        ("Call-ID", call_id),
        ("CSeq", f"1 {cseq_method or method}"),
        *extra,
        ("Content-Length", "0"),
    ]
    lines = [f"{method} {uri} SIP/2.0"] + [f"{n}: {v}" for n, v in headers if n not in drop]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RecordingUser:
    def __init__(self):
        self.requests = []

    def request_received(self, request, source, transaction):
        self.requests.append((request, source, transaction))

    def response_received(self, response, source, transaction):
        pass

    def transaction_failed(self, transaction, reason):
        pass


class CoreTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.core = SipCore(domain="mss.test", user_agent="mss-test")
        self.core.register_user(OptionsResponder(self.core, self.clock), ["OPTIONS"])

    def receive(self, data: bytes, source: Address = PEER):
        self.core.receive(data, source, self.clock.seconds())
        out = self.core.datagrams_to_send()
        return [(parse(d)[0], dest) for d, dest in out]

    def answer(self, data: bytes, source: Address = PEER):
        out = self.receive(data, source)
        self.assertEqual(len(out), 1, out)
        return out[0]


class UASChecksTests(CoreTestCase):

    def test_options_200(self):
        resp, dest = self.answer(request())
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.headers.get("allow"), ALLOW)
        self.assertIn("application/sdp", resp.headers.get("accept"))
        self.assertIn("100rel", resp.headers.get("supported"))
        self.assertEqual(resp.headers.get("server"), "mss-test")
        self.assertIsNotNone(resp.to.tag)
        self.assertEqual(dest, PEER)

    def test_retransmission_absorbed(self):
        """A retransmitted request gets the same response again, not a second TU call."""
        user = RecordingUser()
        self.core.register_user(user, ["MESSAGE"])
        self.receive(request("MESSAGE"))
        self.receive(request("MESSAGE"))
        self.assertEqual(len(user.requests), 1)

    def test_options_retransmission_same_answer(self):
        first = self.core.receive(request(), PEER, self.clock.seconds())
        first = self.core.datagrams_to_send()
        self.core.receive(request(), PEER, self.clock.seconds())
        again = self.core.datagrams_to_send()
        self.assertEqual(first, again)

    def test_unknown_method_501(self):
        resp, _ = self.answer(request("FROB"))
        self.assertEqual(resp.status, 501)
        self.assertEqual(resp.headers.get("allow"), ALLOW)

    def test_max_forwards_zero_483(self):
        resp, _ = self.answer(request(max_forwards=0))
        self.assertEqual(resp.status, 483)

    def test_max_forwards_one_served(self):
        resp, _ = self.answer(request(max_forwards=1))
        self.assertEqual(resp.status, 200)

    def test_loop_482(self):
        """One of the Vias carries our own branch mark: the request went round (§16.3 4)."""
        ours = f"SIP/2.0/UDP 198.51.100.1:5060;branch={self.core.new_branch()}"
        data = request(extra=[("Via", ours)])
        resp, _ = self.answer(data)
        self.assertEqual(resp.status, 482)

    def test_other_branch_no_loop(self):
        resp, _ = self.answer(request(extra=[("Via", "SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK-x")]))
        self.assertEqual(resp.status, 200)

    def test_supported_is_only_what_is_implemented(self):
        """OPTIONS advertises 100rel alone: replaces, path and outbound are not implemented."""
        resp, _ = self.answer(request())
        self.assertEqual(resp.headers.get("supported"), "100rel")

    def test_require_unimplemented_extension_420(self):
        """A request that requires an extension we do not implement is refused with 420."""
        for tag in ("replaces", "path", "outbound"):
            resp, _ = self.answer(request("OPTIONS", branch=f"z9hG4bK{tag}",
                                          extra=[("Require", tag)]))
            self.assertEqual(resp.status, 420, tag)
            self.assertEqual(resp.headers.get("unsupported"), tag)

    def test_unsupported_scheme_416(self):
        resp, _ = self.answer(request(uri="http://example.com/"))
        self.assertEqual(resp.status, 416)

    def test_ack_never_answered(self):
        self.assertEqual(self.receive(request("ACK", max_forwards=0)), [])
        self.assertEqual(self.receive(request("ACK", cseq_method="INVITE")), [])

    def test_malformed_400_with_reason(self):
        resp, dest = self.answer(request(cseq_method="INVITE"))
        self.assertEqual(resp.status, 400)
        self.assertIn("CSeq", resp.reason)
        self.assertEqual(dest, PEER)
        # the answer to a request without Call-ID has none either: look at the bytes
        self.core.receive(request(drop=("Call-ID",)), PEER, self.clock.seconds())
        (data, dest), = self.core.datagrams_to_send()
        self.assertTrue(data.startswith(b"SIP/2.0 400 missing Call-ID header\r\n"), data)
        resp, _ = self.answer(request(extra=[("Max-Forwards", "5")]))
        self.assertEqual(resp.status, 400)
        self.assertIn("Max-Forwards", resp.reason)
        self.assertEqual(self.core.counters["parse_errors"], 3)

    def test_malformed_answer_goes_to_source_port(self):
        """RFC 3581: even a 400 goes to the port the request came from."""
        data = request(cseq_method="INVITE", via="SIP/2.0/UDP 10.0.0.1:5999;branch=z9hG4bKn;rport")
        resp, dest = self.answer(data)
        self.assertEqual(resp.status, 400)
        self.assertEqual(dest, Address("udp", PEER.host, PEER.port))
        self.assertEqual(resp.top_via.param("received"), PEER.host)

    def test_garbage_dropped_then_served(self):
        for junk in (b"\x00\x01\x02 garbage\r\n\r\n", b"HELLO\r\n\r\n",
                     b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
                     request().replace(b"Via: SIP/2.0/UDP 192.0.2.10:5062", b"Via: broken")):
            self.assertEqual(self.receive(junk), [])
        resp, _ = self.answer(request(call_id="after"))
        self.assertEqual((resp.status, resp.call_id), (200, "after"))
        self.assertEqual(self.core.counters["parse_errors"], 4)

    def test_transaction_user_failure_logged(self):
        class Broken(RecordingUser):
            def request_received(self, request, source, transaction):
                raise RuntimeError("boom")
        self.core.register_user(Broken(), ["MESSAGE"])
        self.assertEqual(self.receive(request("MESSAGE")), [])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        resp, _ = self.answer(request(call_id="next", branch="z9hG4bKnext"))
        self.assertEqual(resp.status, 200)

    def test_response_with_two_vias_dropped(self):
        resp = make_response(parse(request(extra=[("Via", "SIP/2.0/UDP 203.0.113.5;branch=z9hG4bKy")]))[0],
                             200)
        self.assertEqual(self.receive(resp.to_bytes()), [])
        self.assertEqual(self.core.counters["dropped"], 1)


class ViaStampingTests(CoreTestCase):
    """RFC 3261 §18.2.1 received, RFC 3581 rport."""

    def delivered(self, data, source=PEER):
        user = RecordingUser()
        self.core.register_user(user, ["MESSAGE"])
        self.receive(data, source)
        return user.requests[0][0].top_via

    def test_received_and_rport(self):
        via = self.delivered(request("MESSAGE", via="SIP/2.0/UDP phone.example;branch=z9hG4bK1;rport"),
                             Address("udp", "203.0.113.7", 40000))
        self.assertEqual(via.param("received"), "203.0.113.7")
        self.assertEqual(via.param("rport"), "40000")

    def test_same_host_no_rport_untouched(self):
        via = self.delivered(request("MESSAGE", via="SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK2"))
        self.assertIsNone(via.param("received"))
        self.assertIsNone(via.param("rport"))

    def test_rport_on_same_host_adds_received(self):
        via = self.delivered(request("MESSAGE", via="SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK3;rport"))
        self.assertEqual(via.param("rport"), "5062")
        self.assertEqual(via.param("received"), "192.0.2.10")

    def test_only_top_via_stamped(self):
        data = request("MESSAGE", via="SIP/2.0/UDP a.example;branch=z9hG4bK4;rport, "
                                      "SIP/2.0/UDP b.example;branch=z9hG4bK5;rport")
        user = RecordingUser()
        self.core.register_user(user, ["MESSAGE"])
        self.receive(data, Address("udp", "203.0.113.8", 1234))
        vias = user.requests[0][0].vias
        self.assertEqual(vias[0].param("rport"), "1234")
        self.assertEqual(vias[1].param("rport"), "")
        self.assertIsNone(vias[1].param("received"))


class ResponseAddressTests(SynchronousTestCase):
    """RFC 3261 §18.2.2 and RFC 3581 §4: where a response goes (one rule for the transaction
    layer and the core's stateless answers)."""

    def route(self, via, source=PEER, symmetric=True):
        req = parse(request(via=via))[0]
        return response_address(req.top_via, source, symmetric)

    def test_reliable_same_connection(self):
        conn = object()
        source = Address("tcp", "192.0.2.10", 50000, conn)
        dest = self.route("SIP/2.0/TCP 192.0.2.10:5062;branch=z9hG4bKt", source, False)
        self.assertIs(dest.connection, conn)
        self.assertEqual((dest.transport, dest.port), ("tcp", 50000))

    def test_symmetric_by_default(self):
        """Back to the source whatever the Via says (NAT)."""
        dest = self.route("SIP/2.0/UDP 10.0.0.7:5070;branch=z9hG4bKs")
        self.assertEqual(dest, PEER)

    def test_maddr_not_honoured(self):
        """A forged maddr must not make the switch send to a third party."""
        for symmetric in (True, False):
            dest = self.route("SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKm;maddr=239.1.1.1",
                              symmetric=symmetric)
            self.assertEqual(dest.host, PEER.host)

    def test_rport(self):
        dest = self.route("SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKr;rport", symmetric=False)
        self.assertEqual(dest, PEER)

    def test_not_symmetric_uses_via_port(self):
        dest = self.route("SIP/2.0/UDP host.example:5070;branch=z9hG4bKq", symmetric=False)
        self.assertEqual(dest, Address("udp", PEER.host, 5070))

    def test_not_symmetric_default_port(self):
        dest = self.route("SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKd", symmetric=False)
        self.assertEqual(dest, Address("udp", PEER.host, 5060))


class TimerTests(CoreTestCase):

    def test_get_timer_is_earliest_of_heap_and_transactions(self):
        self.assertIsNone(self.core.get_timer())
        fired = []
        self.core.timers.call_at(self.clock.seconds() + 30, fired.append, "late")
        self.assertEqual(self.core.get_timer(), self.clock.seconds() + 30)
        # a UDP non-INVITE server transaction in Completed: timer J = 64*T1 = 32 s
        self.receive(request())
        self.assertEqual(self.core.get_timer(), self.clock.seconds() + 30)
        self.core.timers.call_at(self.clock.seconds() + 5, fired.append, "early")
        self.assertEqual(self.core.get_timer(), self.clock.seconds() + 5)
        self.clock.advance(31)
        self.core.handle_timer(self.clock.seconds())
        self.assertEqual(fired, ["early", "late"])
        self.assertEqual(self.core.get_timer(), self.clock.seconds() + 1)

    def test_send_request_adds_via_with_loop_mark_and_user_agent(self):
        self.core.ports = {"udp": 5080, "tcp": 5080}
        req = parse(request("MESSAGE"))[0]
        req.headers.remove("via")
        self.core.send_request(req, Address("udp", "192.0.2.99", 5060), RecordingUser(),
                               self.clock.seconds())
        (data, dest), = self.core.datagrams_to_send()
        sent = parse(data)[0]
        self.assertTrue(sent.top_via.branch.startswith(self.core.loop_mark))
        self.assertEqual(sent.top_via.port, 5080)
        self.assertEqual(sent.headers.get("user-agent"), "mss-test")
        self.assertEqual(dest, Address("udp", "192.0.2.99", 5060))
