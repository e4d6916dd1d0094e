# -*- test-case-name: tests.sip.test_transaction -*-
"""Tests for mss.sip.transaction: every state transition and timer of RFC 3261 §17 (with
RFC 6026), the UAS 2xx retransmission (§13.3.1.4), reliable provisionals (RFC 3262 §3),
CANCEL (§9), RFC 2543 matching, transport errors and table cleanup. Time is explicit."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.sip.address import Address
from mss.sip.message import make_response
from mss.sip.parser import parse_datagram
from mss.sip.transaction import (
    ACCEPTED, CALLING, COMPLETED, CONFIRMED, PROCEEDING, TERMINATED, TRYING, AckTimeout,
    CancelReceived, PrackTimeout, RequestReceived, ResponseReceived, TransactionLayer,
    TransactionTimedOut, TransportError, new_branch, new_tag)

UAC = Address("udp", "127.0.0.1", 5060)
UAS = Address("udp", "127.0.0.2", 5060)
UAC_TCP = Address("tcp", "127.0.0.1", 40000)
UAS_TCP = Address("tcp", "127.0.0.2", 5060)


def request(method="INVITE", branch="z9hG4bK-1", cseq=1, call_id="call-1", from_tag="ft1",
            to_tag=None, uri="sip:bob@127.0.0.2", via="SIP/2.0/UDP 127.0.0.1:5060",
            extra=""):
    to = "<sip:bob@127.0.0.2>" + (f";tag={to_tag}" if to_tag else "")
    br = f";branch={branch}" if branch else ""
    text = (f"{method} {uri} SIP/2.0\r\n"
            f"Via: {via}{br}\r\n"
            f"Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-below\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: Alice <sip:alice@127.0.0.1>;tag={from_tag}\r\n"
            f"To: {to}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"{extra}"
            f"Content-Length: 0\r\n\r\n")
    return parse_datagram(text.encode())


def client_request(method="INVITE", **kw):
    """A request as our UAC sends it: a single Via."""
    req = request(method, **kw)
    req.headers.remove_first("via")
    req.headers.remove_first("via")
    req.headers.add("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={kw.get('branch', 'z9hG4bK-1')}",
                    first=True)
    req.invalidate()
    return req


def response_to(req, status, to_tag="tt1", extra=()):
    resp = make_response(req, status, to_tag=to_tag)
    for name, value in extra:
        resp.headers.add(name, value)
    return parse_datagram(resp.to_bytes())


def run(layer, until):
    """Fire every timer up to ``until`` the way the Twisted shell does (one IDelayedCall
    armed at get_timer()); returns [(time, bytes)] sent and the events, in order."""
    sent, events = [], []
    while True:
        when = layer.get_timer()
        if when is None or when > until:
            break
        layer.handle_timer(when)
        sent.extend((when, data) for data, _ in layer.datagrams_to_send())
        events.extend((when, e) for e in layer.next_events())
    return sent, events


def times(sent):
    return [round(t, 6) for t, _ in sent]


class NewBranchTests(SynchronousTestCase):
    def test_magic_cookie_and_unique(self):
        branches = {new_branch() for _ in range(1000)}
        self.assertEqual(len(branches), 1000)
        for b in branches:
            self.assertTrue(b.startswith("z9hG4bK"))
            self.assertGreaterEqual(len(b), 7 + 16)
        self.assertNotEqual(new_tag(), new_tag())


class ClientInviteTests(SynchronousTestCase):
    def setUp(self):
        self.layer = TransactionLayer()
        self.invite = client_request()
        self.tx = self.layer.send_request(self.invite, UAS, 0.0)

    def test_sent_once_with_cached_bytes(self):
        [(data, dest)] = self.layer.datagrams_to_send()
        self.assertEqual(data, self.invite.to_bytes())
        self.assertEqual(dest, UAS)
        self.assertEqual(self.tx.state, CALLING)
        self.assertEqual(self.tx.destination, UAS)

    def test_timer_a_doubles_and_timer_b_times_out(self):
        self.layer.datagrams_to_send()
        sent, events = run(self.layer, 100)
        self.assertEqual(times(sent), [0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
        self.assertTrue(all(d == self.invite.to_bytes() for _, d in sent))
        self.assertEqual(events, [(32.0, TransactionTimedOut(self.tx))])
        self.assertEqual(self.tx.state, TERMINATED)
        self.assertEqual(len(self.layer), 0)
        self.assertIsNone(self.layer.get_timer())

    def test_provisional_stops_a_and_b(self):
        ringing = response_to(self.invite, 180)
        self.layer.receive_response(ringing, UAS, 0.2)
        self.assertEqual(self.layer.next_events(), [ResponseReceived(ringing, UAS, self.tx)])
        self.assertEqual(self.tx.state, PROCEEDING)
        self.layer.datagrams_to_send()
        sent, events = run(self.layer, 1000)
        self.assertEqual((sent, events), ([], []))
        self.assertEqual(len(self.layer), 1)       # Proceeding has no timer: the TU cancels

    def test_non_2xx_final_generates_ack_and_timer_d(self):
        self.layer.datagrams_to_send()
        busy = response_to(self.invite, 486, to_tag="busy")
        self.layer.receive_response(busy, UAS, 1.0)
        self.assertEqual(self.layer.next_events(), [ResponseReceived(busy, UAS, self.tx)])
        [(data, dest)] = self.layer.datagrams_to_send()
        self.assertEqual(dest, UAS)
        ack = parse_datagram(data)
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(ack.uri, self.invite.uri)
        self.assertEqual(ack.top_via.branch, self.invite.top_via.branch)
        self.assertEqual(len(ack.vias), 1)
        self.assertEqual(ack.to.tag, "busy")
        self.assertEqual(ack.from_.tag, "ft1")
        self.assertEqual(ack.call_id, "call-1")
        self.assertEqual((ack.cseq.number, ack.cseq.method), (1, "ACK"))
        self.assertEqual(self.tx.state, COMPLETED)
        # a retransmitted final is absorbed and re-ACKed
        self.layer.receive_response(busy, UAS, 2.0)
        self.assertEqual(self.layer.next_events(), [])
        self.assertEqual(self.layer.datagrams_to_send(), [(data, UAS)])
        sent, events = run(self.layer, 32.9)
        self.assertEqual(self.tx.state, COMPLETED)
        run(self.layer, 33.0)
        self.assertEqual(self.tx.state, TERMINATED)
        self.assertEqual(len(self.layer), 0)

    def test_ack_copies_routes_of_the_invite(self):
        invite = client_request(branch="z9hG4bK-r",
                                extra="Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\n")
        tx = self.layer.send_request(invite, UAS, 0.0)
        self.layer.datagrams_to_send()
        self.layer.receive_response(response_to(invite, 404), UAS, 0.1)
        [(data, _)] = self.layer.datagrams_to_send()
        ack = parse_datagram(data)
        self.assertEqual(ack.headers.get_lines("route"), ["<sip:p1;lr>", "<sip:p2;lr>"])
        self.assertEqual(tx.state, COMPLETED)

    def test_2xx_accepted_then_timer_m(self):
        ok = response_to(self.invite, 200)
        self.layer.receive_response(ok, UAS, 1.0)
        self.assertEqual(self.tx.state, ACCEPTED)
        self.assertEqual(self.layer.next_events(), [ResponseReceived(ok, UAS, self.tx)])
        self.layer.datagrams_to_send()
        # retransmitted 2xx (and a 2xx from another fork) go to the TU; no ACK from us
        fork = response_to(self.invite, 200, to_tag="other")
        self.layer.receive_response(ok, UAS, 2.0)
        self.layer.receive_response(fork, UAS, 2.5)
        self.assertEqual(self.layer.next_events(),
                         [ResponseReceived(ok, UAS, self.tx), ResponseReceived(fork, UAS, self.tx)])
        self.assertEqual(self.layer.datagrams_to_send(), [])
        run(self.layer, 32.9)
        self.assertEqual(self.tx.state, ACCEPTED)
        run(self.layer, 33.0)
        self.assertEqual(self.tx.state, TERMINATED)
        self.assertEqual(len(self.layer), 0)
        # afterwards a 2xx is stray: the TU re-ACKs
        self.layer.receive_response(ok, UAS, 40.0)
        self.assertEqual(self.layer.next_events(), [ResponseReceived(ok, UAS, None)])

    def test_provisional_after_final_ignored(self):
        self.layer.receive_response(response_to(self.invite, 200), UAS, 1.0)
        self.layer.next_events()
        self.layer.receive_response(response_to(self.invite, 180), UAS, 1.1)
        self.assertEqual(self.layer.next_events(), [])

    def test_tcp_no_retransmission_and_d_zero(self):
        layer = TransactionLayer()
        invite = client_request(branch="z9hG4bK-tcp")
        tx = layer.send_request(invite, UAS_TCP, 0.0)
        layer.datagrams_to_send()
        self.assertEqual(layer.get_timer(), 32.0)      # B only
        layer.receive_response(response_to(invite, 603), UAS_TCP, 1.0)
        [(data, dest)] = layer.datagrams_to_send()
        self.assertEqual(parse_datagram(data).method, "ACK")
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(len(layer), 0)
        self.assertIsNone(layer.get_timer())

    def test_tcp_timer_b(self):
        layer = TransactionLayer()
        tx = layer.send_request(client_request(branch="z9hG4bK-tcp"), UAS_TCP, 0.0)
        layer.datagrams_to_send()
        sent, events = run(layer, 100)
        self.assertEqual(sent, [])
        self.assertEqual(events, [(32.0, TransactionTimedOut(tx))])

    def test_bad_requests_refused(self):
        with self.assertRaises(ValueError):
            self.layer.send_request(client_request(branch="z9hG4bK-1"), UAS, 0.0)   # in use
        with self.assertRaises(ValueError):
            self.layer.send_request(client_request(branch="old-style"), UAS, 0.0)
        with self.assertRaises(ValueError):
            self.layer.send_request(client_request("ACK", branch="z9hG4bK-a"), UAS, 0.0)


class ClientNonInviteTests(SynchronousTestCase):
    def setUp(self):
        self.layer = TransactionLayer()
        self.req = client_request("OPTIONS", branch="z9hG4bK-o")
        self.tx = self.layer.send_request(self.req, UAS, 0.0)
        self.layer.datagrams_to_send()

    def test_timer_e_capped_at_t2_and_timer_f(self):
        sent, events = run(self.layer, 100)
        self.assertEqual(times(sent), [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.assertEqual(events, [(32.0, TransactionTimedOut(self.tx))])
        self.assertEqual(len(self.layer), 0)

    def test_provisional_moves_to_proceeding_e_at_t2(self):
        sent, _ = run(self.layer, 0.6)
        trying = response_to(self.req, 100, to_tag=None)
        self.layer.receive_response(trying, UAS, 0.7)
        self.assertEqual(self.tx.state, PROCEEDING)
        self.assertEqual(self.layer.next_events(), [ResponseReceived(trying, UAS, self.tx)])
        sent, events = run(self.layer, 10)
        self.assertEqual(times(sent), [1.5, 5.5, 9.5])

    def test_final_then_timer_k(self):
        ok = response_to(self.req, 200)
        self.layer.receive_response(ok, UAS, 1.0)
        self.assertEqual(self.layer.next_events(), [ResponseReceived(ok, UAS, self.tx)])
        self.assertEqual(self.tx.state, COMPLETED)
        self.layer.receive_response(ok, UAS, 2.0)                # retransmission absorbed
        self.assertEqual(self.layer.next_events(), [])
        sent, events = run(self.layer, 5.9)
        self.assertEqual((sent, events), ([], []))
        self.assertEqual(self.tx.state, COMPLETED)
        run(self.layer, 6.0)                                      # K = T4 after 1.0
        self.assertEqual(self.tx.state, TERMINATED)
        self.assertEqual(len(self.layer), 0)

    def test_tcp_k_zero(self):
        layer = TransactionLayer()
        req = client_request("BYE", branch="z9hG4bK-b")
        tx = layer.send_request(req, UAS_TCP, 0.0)
        layer.receive_response(response_to(req, 200), UAS_TCP, 0.1)
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(len(layer), 0)

    def test_stray_response(self):
        other = client_request("OPTIONS", branch="z9hG4bK-unknown")
        resp = response_to(other, 200)
        self.layer.receive_response(resp, UAS, 1.0)
        self.assertEqual(self.layer.next_events(), [ResponseReceived(resp, UAS, None)])
        # same branch, other method: no match either (§17.1.3)
        resp = response_to(client_request("INVITE", branch="z9hG4bK-o"), 200)
        self.layer.receive_response(resp, UAS, 1.0)
        self.assertEqual(self.layer.next_events(), [ResponseReceived(resp, UAS, None)])


class ServerInviteTests(SynchronousTestCase):
    def setUp(self):
        self.layer = TransactionLayer()
        self.invite = request()
        self.layer.receive_request(self.invite, UAC, 0.0)
        [event] = self.layer.next_events()
        self.assertIsInstance(event, RequestReceived)
        self.tx = event.transaction
        self.assertIs(event.request, self.invite)
        [(data, dest)] = self.layer.datagrams_to_send()
        self.trying = data

    def test_trying_sent_and_retransmission_absorbed(self):
        self.assertTrue(self.trying.startswith(b"SIP/2.0 100 Trying"))
        self.assertEqual(self.tx.state, PROCEEDING)
        self.layer.receive_request(request(), UAC, 0.5)
        self.assertEqual(self.layer.next_events(), [])
        self.assertEqual(self.layer.datagrams_to_send(), [(self.trying, UAC)])
        ringing = make_response(self.invite, 180, to_tag="tag9")
        self.layer.send_response(self.tx, ringing, 1.0)
        self.assertEqual(self.tx.to_tag, "tag9")
        self.assertEqual(self.layer.datagrams_to_send(), [(ringing.to_bytes(), UAC)])
        self.layer.receive_request(request(), UAC, 1.5)
        self.assertEqual(self.layer.datagrams_to_send(), [(ringing.to_bytes(), UAC)])

    def test_non_2xx_timer_g_and_h(self):
        busy = make_response(self.invite, 486, to_tag="t")
        self.layer.send_response(self.tx, busy, 0.0)
        self.assertEqual(self.tx.state, COMPLETED)
        self.assertEqual(self.layer.datagrams_to_send(), [(busy.to_bytes(), UAC)])
        sent, events = run(self.layer, 100)
        self.assertEqual(times(sent), [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.assertTrue(all(d == busy.to_bytes() for _, d in sent))
        self.assertEqual(events, [(32.0, TransactionTimedOut(self.tx))])
        self.assertEqual(len(self.layer), 0)

    def test_ack_confirms_and_timer_i(self):
        busy = make_response(self.invite, 486, to_tag="t")
        self.layer.send_response(self.tx, busy, 0.0)
        run(self.layer, 0.6)                     # one G retransmission
        self.layer.datagrams_to_send()
        self.layer.receive_request(request("ACK", to_tag="t"), UAC, 1.0)
        self.assertEqual(self.tx.state, CONFIRMED)
        self.assertEqual(self.layer.next_events(), [])     # absorbed
        self.layer.receive_request(request("ACK", to_tag="t"), UAC, 2.0)
        self.assertEqual(self.layer.next_events(), [])
        self.layer.receive_request(request(), UAC, 2.0)    # INVITE retransmission: silence
        sent, events = run(self.layer, 5.9)
        self.assertEqual((sent, events), ([], []))
        self.assertEqual(self.layer.datagrams_to_send(), [])
        run(self.layer, 6.0)                                # I = T4
        self.assertEqual(self.tx.state, TERMINATED)
        self.assertEqual(len(self.layer), 0)

    def test_completed_resends_final_on_invite_retransmission(self):
        busy = make_response(self.invite, 486, to_tag="t")
        self.layer.send_response(self.tx, busy, 0.0)
        self.layer.datagrams_to_send()
        self.layer.receive_request(request(), UAC, 0.2)
        self.assertEqual(self.layer.datagrams_to_send(), [(busy.to_bytes(), UAC)])

    def test_2xx_retransmitted_until_ack(self):
        ok = make_response(self.invite, 200, to_tag="ok")
        self.layer.send_response(self.tx, ok, 0.0)
        self.assertEqual(self.tx.state, ACCEPTED)
        self.layer.datagrams_to_send()
        sent, events = run(self.layer, 8.0)
        self.assertEqual(times(sent), [0.5, 1.5, 3.5, 7.5])
        self.assertTrue(all(d == ok.to_bytes() for _, d in sent))
        # INVITE retransmissions are absorbed in Accepted (RFC 6026)
        self.layer.receive_request(request(), UAC, 8.5)
        self.assertEqual(self.layer.datagrams_to_send(), [])
        # the ACK for a 2xx is its own transaction (new branch)
        ack = request("ACK", branch="z9hG4bK-ack", to_tag="ok")
        self.layer.receive_request(ack, UAC, 9.0)
        self.assertEqual(self.layer.next_events(), [RequestReceived(ack, UAC, None)])
        sent, events = run(self.layer, 100)
        self.assertEqual((sent, events), ([], []))        # no more 2xx, no AckTimeout
        self.assertEqual(self.tx.state, TERMINATED)
        self.assertEqual(len(self.layer), 0)
        self.assertEqual(len(self.layer._ack_index), 0)

    def test_2xx_ack_timeout(self):
        ok = make_response(self.invite, 200, to_tag="ok")
        self.layer.send_response(self.tx, ok, 0.0)
        self.layer.datagrams_to_send()
        sent, events = run(self.layer, 100)
        self.assertEqual(times(sent), [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
        self.assertEqual(events, [(32.0, AckTimeout(self.tx))])
        self.assertEqual(len(self.layer), 0)
        self.assertEqual(len(self.layer._ack_index), 0)

    def test_ack_with_wrong_to_tag_does_not_stop_2xx(self):
        self.layer.send_response(self.tx, make_response(self.invite, 200, to_tag="ok"), 0.0)
        self.layer.datagrams_to_send()
        ack = request("ACK", branch="z9hG4bK-ack", to_tag="other")
        self.layer.receive_request(ack, UAC, 0.1)
        self.assertEqual(self.layer.next_events(), [RequestReceived(ack, UAC, None)])
        sent, _ = run(self.layer, 0.5)
        self.assertEqual(len(sent), 1)

    def test_ack_with_invite_branch_in_accepted(self):
        """A UA reusing the INVITE branch for the 2xx ACK still stops the 2xx."""
        self.layer.send_response(self.tx, make_response(self.invite, 200, to_tag="ok"), 0.0)
        self.layer.datagrams_to_send()
        ack = request("ACK", to_tag="ok")
        self.layer.receive_request(ack, UAC, 0.1)
        self.assertEqual(self.layer.next_events(), [RequestReceived(ack, UAC, None)])
        sent, events = run(self.layer, 100)
        self.assertEqual((sent, events), ([], []))

    def test_tu_2xx_retransmission_in_accepted(self):
        ok = make_response(self.invite, 200, to_tag="ok")
        self.layer.send_response(self.tx, ok, 0.0)
        self.layer.datagrams_to_send()
        self.layer.send_response(self.tx, ok, 0.1)
        self.assertEqual(self.layer.datagrams_to_send(), [(ok.to_bytes(), UAC)])
        self.layer.send_response(self.tx, make_response(self.invite, 486), 0.2)   # too late
        self.assertEqual(self.layer.datagrams_to_send(), [])

    def test_tcp(self):
        layer = TransactionLayer()
        layer.receive_request(request(via="SIP/2.0/TCP 127.0.0.1:40000"), UAC_TCP, 0.0)
        [event] = layer.next_events()
        tx = event.transaction
        layer.datagrams_to_send()
        layer.send_response(tx, make_response(tx.request, 486, to_tag="t"), 0.0)
        layer.datagrams_to_send()
        self.assertEqual(layer.get_timer(), 32.0)     # H, no G
        layer.receive_request(request("ACK", to_tag="t", via="SIP/2.0/TCP 127.0.0.1:40000"),
                              UAC_TCP, 1.0)
        self.assertEqual(tx.state, TERMINATED)        # I = 0
        self.assertEqual(len(layer), 0)
        # 2xx on TCP: no retransmission, but the ACK timeout holds
        layer.receive_request(request(branch="z9hG4bK-2", via="SIP/2.0/TCP 127.0.0.1:40000"),
                              UAC_TCP, 2.0)
        [event] = layer.next_events()
        layer.send_response(event.transaction, make_response(event.request, 200, to_tag="x"),
                            2.0)
        layer.datagrams_to_send()
        sent, events = run(layer, 100)
        self.assertEqual(sent, [])
        self.assertEqual(events, [(34.0, AckTimeout(event.transaction))])
        self.assertEqual(len(layer), 0)

    def test_no_trying_option(self):
        layer = TransactionLayer(send_trying=False)
        layer.receive_request(request(), UAC, 0.0)
        self.assertEqual(layer.datagrams_to_send(), [])
        [event] = layer.next_events()
        layer.receive_request(request(), UAC, 0.5)      # nothing to resend yet
        self.assertEqual(layer.datagrams_to_send(), [])

    def test_same_branch_other_sent_by_is_another_transaction(self):
        other = request(via="SIP/2.0/UDP 127.0.0.9:5060")
        self.layer.receive_request(other, UAC, 0.1)
        [event] = self.layer.next_events()
        self.assertIsNot(event.transaction, self.tx)
        self.assertEqual(len(self.layer), 2)


class ServerNonInviteTests(SynchronousTestCase):
    def test_states_and_timer_j(self):
        layer = TransactionLayer()
        req = request("REGISTER", branch="z9hG4bK-r", uri="sip:127.0.0.2")
        layer.receive_request(req, UAC, 0.0)
        [event] = layer.next_events()
        tx = event.transaction
        self.assertEqual(tx.state, TRYING)
        self.assertEqual(layer.datagrams_to_send(), [])
        layer.receive_request(req, UAC, 0.5)               # Trying: absorbed silently
        self.assertEqual((layer.next_events(), layer.datagrams_to_send()), ([], []))
        trying = make_response(req, 100)
        layer.send_response(tx, trying, 0.6)
        self.assertEqual(tx.state, PROCEEDING)
        layer.datagrams_to_send()
        layer.receive_request(req, UAC, 1.0)
        self.assertEqual(layer.datagrams_to_send(), [(trying.to_bytes(), UAC)])
        ok = make_response(req, 200, to_tag="r")
        layer.send_response(tx, ok, 2.0)
        self.assertEqual(tx.state, COMPLETED)
        layer.datagrams_to_send()
        layer.receive_request(req, UAC, 3.0)
        self.assertEqual(layer.datagrams_to_send(), [(ok.to_bytes(), UAC)])
        self.assertEqual(layer.next_events(), [])
        sent, _ = run(layer, 33.9)
        self.assertEqual(sent, [])                          # no retransmission of its own
        self.assertEqual(tx.state, COMPLETED)
        run(layer, 34.0)                                    # J = 64*T1
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(len(layer), 0)
        layer.send_response(tx, ok, 35.0)                   # late: dropped, no crash
        self.assertEqual(layer.datagrams_to_send(), [])

    def test_tcp_j_zero(self):
        layer = TransactionLayer()
        layer.receive_request(request("OPTIONS", via="SIP/2.0/TCP 127.0.0.1:40000"), UAC_TCP, 0)
        [event] = layer.next_events()
        layer.send_response(event.transaction, make_response(event.request, 200), 0.0)
        self.assertEqual(layer.datagrams_to_send()[0][1], UAC_TCP)
        self.assertEqual(event.transaction.state, TERMINATED)
        self.assertEqual(len(layer), 0)


class CancelServerTests(SynchronousTestCase):
    def setUp(self):
        self.layer = TransactionLayer()
        self.invite = request()
        self.layer.receive_request(self.invite, UAC, 0.0)
        [event] = self.layer.next_events()
        self.tx = event.transaction
        self.layer.datagrams_to_send()

    def test_cancel_pending_invite(self):
        cancel = request("CANCEL")
        self.layer.receive_request(cancel, UAC, 1.0)
        [event] = self.layer.next_events()
        self.assertEqual(event, CancelReceived(cancel, UAC, self.tx))
        [(data, dest)] = self.layer.datagrams_to_send()
        resp = parse_datagram(data)
        self.assertEqual((resp.status, resp.cseq.method), (200, "CANCEL"))
        self.assertIsNotNone(self.tx.to_tag)
        self.assertEqual(resp.to.tag, self.tx.to_tag)
        # CANCEL retransmission: the same 200 again, no new event
        self.layer.receive_request(cancel, UAC, 1.5)
        self.assertEqual(self.layer.datagrams_to_send(), [(data, UAC)])
        self.assertEqual(self.layer.next_events(), [])
        # the TU answers the INVITE 487 with the same tag; the ACK is absorbed
        self.layer.send_response(self.tx, make_response(self.invite, 487, to_tag=self.tx.to_tag),
                                 1.6)
        self.layer.receive_request(request("ACK", to_tag=self.tx.to_tag), UAC, 1.7)
        self.assertEqual(self.layer.next_events(), [])
        self.assertEqual(self.tx.state, CONFIRMED)
        run(self.layer, 100)
        self.assertEqual(len(self.layer), 0)

    def test_cancel_uses_tag_of_earlier_provisional(self):
        self.layer.send_response(self.tx, make_response(self.invite, 180, to_tag="ring"), 0.5)
        self.layer.datagrams_to_send()
        self.layer.receive_request(request("CANCEL"), UAC, 1.0)
        [(data, _)] = self.layer.datagrams_to_send()
        self.assertEqual(parse_datagram(data).to.tag, "ring")

    def test_cancel_without_transaction_gets_481(self):
        cancel = request("CANCEL", branch="z9hG4bK-nothing")
        self.layer.receive_request(cancel, UAC, 1.0)
        self.assertEqual(self.layer.next_events(), [])
        [(data, _)] = self.layer.datagrams_to_send()
        resp = parse_datagram(data)
        self.assertEqual(resp.status, 481)
        self.assertIsNotNone(resp.to.tag)

    def test_cancel_after_final_gets_200_without_event(self):
        self.layer.send_response(self.tx, make_response(self.invite, 200, to_tag="ok"), 0.5)
        self.layer.datagrams_to_send()
        self.layer.receive_request(request("CANCEL"), UAC, 1.0)
        self.assertEqual(self.layer.next_events(), [])
        [(data, _)] = self.layer.datagrams_to_send()
        self.assertEqual(parse_datagram(data).status, 200)
        self.assertEqual(parse_datagram(data).to.tag, "ok")


class CancelClientTests(SynchronousTestCase):
    def setUp(self):
        self.layer = TransactionLayer()
        self.invite = client_request(extra="Route: <sip:proxy;lr>\r\n")
        self.tx = self.layer.send_request(self.invite, UAS, 0.0)
        self.layer.datagrams_to_send()

    def test_cancel_waits_for_provisional(self):
        reason = 'SIP;cause=200;text="Call completed elsewhere"'
        cancel = self.layer.cancel(self.tx, 0.1, reason=reason)
        self.assertEqual(cancel.method, "CANCEL")
        self.assertEqual(self.layer.datagrams_to_send(), [])       # §9.1: not before a 1xx
        self.assertIs(self.layer.cancel(self.tx, 0.2), cancel)     # idempotent
        self.layer.receive_response(response_to(self.invite, 180), UAS, 0.3)
        self.layer.next_events()
        [(data, dest)] = self.layer.datagrams_to_send()
        self.assertEqual(dest, UAS)
        sent = parse_datagram(data)
        self.assertEqual(sent.uri, self.invite.uri)
        self.assertEqual(sent.top_via.branch, self.invite.top_via.branch)
        self.assertEqual(sent.call_id, self.invite.call_id)
        self.assertEqual(str(sent.from_), str(self.invite.from_))
        self.assertEqual(str(sent.to), str(self.invite.to))
        self.assertEqual((sent.cseq.number, sent.cseq.method), (1, "CANCEL"))
        self.assertEqual(sent.headers.get_lines("route"), ["<sip:proxy;lr>"])
        self.assertEqual(sent.headers.get("reason"), reason)
        ctx = self.tx.cancel_transaction
        self.assertEqual(ctx.method, "CANCEL")
        self.assertEqual(len(self.layer), 2)
        # 200 for the CANCEL, then 487 for the INVITE
        self.layer.receive_response(response_to(sent, 200), UAS, 0.4)
        self.layer.receive_response(response_to(self.invite, 487), UAS, 0.5)
        events = self.layer.next_events()
        self.assertEqual([(e.response.status, e.transaction) for e in events],
                         [(200, ctx), (487, self.tx)])
        run(self.layer, 100)
        self.assertEqual(len(self.layer), 0)

    def test_cancel_dropped_when_final_arrives_first(self):
        self.layer.cancel(self.tx, 0.1)
        self.layer.receive_response(response_to(self.invite, 486), UAS, 0.3)
        [(data, _)] = self.layer.datagrams_to_send()
        self.assertEqual(parse_datagram(data).method, "ACK")
        self.assertIsNone(self.layer.cancel(self.tx, 0.4))
        self.assertIsNone(self.tx.cancel_transaction)

    def test_invite_given_up_64t1_after_cancel(self):
        self.layer.receive_response(response_to(self.invite, 180), UAS, 0.3)
        self.layer.next_events()
        self.layer.cancel(self.tx, 1.0)
        ctx = self.tx.cancel_transaction
        self.layer.receive_response(response_to(ctx.request, 200), UAS, 1.1)
        self.layer.next_events()
        sent, events = run(self.layer, 100)
        self.assertEqual(events, [(33.0, TransactionTimedOut(self.tx))])
        self.assertEqual(len(self.layer), 0)

    def test_cancel_non_invite_refused(self):
        tx = self.layer.send_request(client_request("OPTIONS", branch="z9hG4bK-o"), UAS, 0)
        with self.assertRaises(ValueError):
            self.layer.cancel(tx, 0.0)


class RFC2543MatchingTests(SynchronousTestCase):
    """§17.2.3: requests without the magic cookie are matched on the 2543 tuple."""

    def setUp(self):
        self.layer = TransactionLayer()
        self.invite = request(branch="old1")
        self.layer.receive_request(self.invite, UAC, 0.0)
        [event] = self.layer.next_events()
        self.tx = event.transaction
        self.layer.datagrams_to_send()

    def test_retransmission_and_ack(self):
        self.layer.receive_request(request(branch="old1"), UAC, 0.5)
        self.assertEqual(self.layer.next_events(), [])
        self.assertEqual(len(self.layer.datagrams_to_send()), 1)     # the 100 again
        self.layer.send_response(self.tx, make_response(self.invite, 404, to_tag="nf"), 1.0)
        ack = request("ACK", branch="old1", to_tag="nf")
        self.layer.receive_request(ack, UAC, 1.2)
        self.assertEqual(self.layer.next_events(), [])
        self.assertEqual(self.tx.state, CONFIRMED)
        run(self.layer, 100)
        self.assertEqual(len(self.layer), 0)

    def test_no_branch_at_all(self):
        layer = TransactionLayer()
        layer.receive_request(request(branch=None), UAC, 0.0)
        [event] = layer.next_events()
        layer.receive_request(request(branch=None), UAC, 0.1)
        self.assertEqual(layer.next_events(), [])
        self.assertEqual(len(layer), 1)

    def test_different_tuple_is_a_new_transaction(self):
        for kw in ({"from_tag": "other"}, {"call_id": "call-2"}, {"cseq": 2},
                   {"uri": "sip:carol@127.0.0.2"}, {"via": "SIP/2.0/UDP 127.0.0.1:5062"},
                   {"to_tag": "x"}):
            self.layer.receive_request(request(branch="old1", **kw), UAC, 0.5)
            [event] = self.layer.next_events()
            self.assertIsNot(event.transaction, self.tx)

    def test_ack_with_wrong_to_tag_is_not_absorbed(self):
        self.layer.send_response(self.tx, make_response(self.invite, 404, to_tag="nf"), 1.0)
        ack = request("ACK", branch="old1", to_tag="wrong")
        self.layer.receive_request(ack, UAC, 1.2)
        self.assertEqual(self.layer.next_events(), [RequestReceived(ack, UAC, None)])
        self.assertEqual(self.tx.state, COMPLETED)

    def test_cancel(self):
        cancel = request("CANCEL", branch="old1")
        self.layer.receive_request(cancel, UAC, 0.5)
        self.assertEqual(self.layer.next_events(), [CancelReceived(cancel, UAC, self.tx)])
        [(data, _)] = self.layer.datagrams_to_send()
        self.assertEqual(parse_datagram(data).status, 200)
        self.layer.receive_request(cancel, UAC, 0.6)
        self.assertEqual(self.layer.next_events(), [])
        self.assertEqual(len(self.layer.datagrams_to_send()), 1)


class ReliableProvisionalTests(SynchronousTestCase):
    def setUp(self):
        self.layer = TransactionLayer()
        self.invite = request(extra="Require: 100rel\r\n")
        self.layer.receive_request(self.invite, UAC, 0.0)
        [event] = self.layer.next_events()
        self.tx = event.transaction
        self.layer.datagrams_to_send()

    def reliable(self, rseq, status=183):
        resp = make_response(self.invite, status, to_tag="rel")
        resp.headers.add("Require", "100rel")
        resp.headers.add("RSeq", str(rseq))
        return resp

    def test_retransmitted_doubling_until_prack_timeout(self):
        resp = self.reliable(1)
        self.layer.send_reliable_provisional(self.tx, resp, 0.0)
        self.assertEqual(self.layer.datagrams_to_send(), [(resp.to_bytes(), UAC)])
        sent, events = run(self.layer, 40)
        self.assertEqual(times(sent), [0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
        self.assertTrue(all(d == resp.to_bytes() for _, d in sent))
        self.assertEqual(events, [(32.0, PrackTimeout(self.tx, 1))])
        self.assertEqual(self.tx.state, PROCEEDING)      # the TU answers 5xx

    def test_prack_stops(self):
        self.layer.send_reliable_provisional(self.tx, self.reliable(1), 0.0)
        run(self.layer, 2.0)
        self.assertFalse(self.layer.prack_received(self.tx, 2))
        self.assertTrue(self.layer.prack_received(self.tx, 1))
        self.assertFalse(self.layer.prack_received(self.tx, 1))
        sent, events = run(self.layer, 40)
        self.assertEqual((sent, events), ([], []))

    def test_final_response_stops(self):
        self.layer.send_reliable_provisional(self.tx, self.reliable(1), 0.0)
        self.layer.send_reliable_provisional(self.tx, self.reliable(2, 180), 0.1)
        self.layer.send_response(self.tx, make_response(self.invite, 486, to_tag="rel"), 0.2)
        self.layer.datagrams_to_send()
        self.layer.receive_request(request("ACK", to_tag="rel"), UAC, 0.3)
        sent, events = run(self.layer, 40)
        self.assertEqual((sent, events), ([], []))
        self.assertEqual(len(self.layer), 0)

    def test_retransmitted_on_tcp_too(self):
        layer = TransactionLayer()
        layer.receive_request(request(via="SIP/2.0/TCP 127.0.0.1:40000"), UAC_TCP, 0.0)
        [event] = layer.next_events()
        resp = make_response(event.request, 180, to_tag="r")
        resp.headers.add("RSeq", "7")
        layer.send_reliable_provisional(event.transaction, resp, 0.0)
        layer.datagrams_to_send()
        sent, events = run(layer, 2.0)
        self.assertEqual(times(sent), [0.5, 1.5])

    def test_refuses_without_rseq(self):
        with self.assertRaises(ValueError):
            self.layer.send_reliable_provisional(
                self.tx, make_response(self.invite, 180, to_tag="x"), 0.0)
        with self.assertRaises(ValueError):
            self.layer.send_reliable_provisional(self.tx, self.reliable(1, 100), 0.0)


class TransportErrorTests(SynchronousTestCase):
    def test_by_transaction(self):
        layer = TransactionLayer()
        tx = layer.send_request(client_request(), UAS, 0.0)
        layer.transport_error(tx, 0.1)
        self.assertEqual(layer.next_events(), [TransportError(tx)])
        self.assertEqual(tx.state, TERMINATED)
        self.assertEqual(len(layer), 0)
        self.assertIsNone(layer.get_timer())
        layer.transport_error(tx, 0.2)                     # once only
        self.assertEqual(layer.next_events(), [])

    def test_by_address(self):
        layer = TransactionLayer()
        c1 = layer.send_request(client_request(branch="z9hG4bK-a"), UAS, 0.0)
        c2 = layer.send_request(client_request("OPTIONS", branch="z9hG4bK-b"), UAS, 0.0)
        c3 = layer.send_request(client_request("OPTIONS", branch="z9hG4bK-c"),
                                Address("udp", "127.0.0.3", 5060), 0.0)
        layer.receive_request(request(branch="z9hG4bK-s"), UAS, 0.0)
        [event] = layer.next_events()
        layer.transport_error(Address("udp", "127.0.0.2", 5060), 0.1)
        self.assertEqual(set(layer.next_events()),
                         {TransportError(c1), TransportError(c2),
                          TransportError(event.transaction)})
        self.assertEqual(len(layer), 1)
        self.assertEqual(c3.state, TRYING)


class CallFlowTests(SynchronousTestCase):
    """Two layers talking through lossless wires: INVITE/100/180/200/ACK/BYE/200, then every
    table and the timer heap drain."""

    def deliver(self, sender, receiver, source, now):
        for data, _ in sender.datagrams_to_send():
            msg = parse_datagram(data)
            if msg.is_request:
                receiver.receive_request(msg, source, now)
            else:
                receiver.receive_response(msg, source, now)

    def test_call(self):
        uac, uas = TransactionLayer(), TransactionLayer()
        invite = client_request(branch=new_branch())
        ctx = uac.send_request(invite, UAS, 0.0)
        self.deliver(uac, uas, UAC, 0.01)
        [req] = uas.next_events()
        stx = req.transaction
        self.deliver(uas, uac, UAS, 0.02)                         # 100
        self.assertEqual(uac.next_events()[0].response.status, 100)
        uas.send_response(stx, make_response(req.request, 180, to_tag="b"), 0.1)
        uas.send_response(stx, make_response(req.request, 200, to_tag="b"), 1.0)
        self.deliver(uas, uac, UAS, 1.01)
        self.assertEqual([e.response.status for e in uac.next_events()], [180, 200])
        self.assertEqual(ctx.state, ACCEPTED)
        ok = ctx.last_response
        ack = client_request("ACK", branch=new_branch(), to_tag=ok.to.tag)
        uac.send_stateless(ack, UAS)
        self.deliver(uac, uas, UAC, 1.02)
        [event] = uas.next_events()
        self.assertEqual((event.request.method, event.transaction), ("ACK", None))
        bye = client_request("BYE", branch=new_branch(), cseq=2, to_tag="b")
        btx = uac.send_request(bye, UAS, 5.0)
        self.deliver(uac, uas, UAC, 5.01)
        [event] = uas.next_events()
        uas.send_response(event.transaction, make_response(event.request, 200), 5.02)
        self.deliver(uas, uac, UAS, 5.03)
        [event] = uac.next_events()
        self.assertIs(event.transaction, btx)
        self.assertEqual(len(uac), 2)
        self.assertEqual(len(uas), 2)
        for layer in (uac, uas):
            sent, events = run(layer, 100)
            self.assertEqual(events, [])
            self.assertEqual(len(layer), 0)
            self.assertEqual(layer._ack_index, {})
            self.assertEqual(len(layer.timers), 0)


class ResponseAddressTests(SynchronousTestCase):
    """§18.2.2 / RFC 3581: where a server transaction's responses go."""

    def answer_address(self, layer, via, source):
        layer.receive_request(request("OPTIONS", via=via), source, 0.0)
        [event] = layer.next_events()
        layer.send_response(event.transaction, make_response(event.request, 200), 0.0)
        [(_, dest)] = layer.datagrams_to_send()
        return dest

    def test_symmetric_by_default(self):
        src = Address("udp", "192.0.2.1", 40001)
        self.assertEqual(self.answer_address(TransactionLayer(), "SIP/2.0/UDP 10.0.0.1:5060",
                                             src), src)

    def test_via_port_when_not_symmetric(self):
        layer = TransactionLayer(symmetric_responses=False)
        src = Address("udp", "192.0.2.1", 40001)
        self.assertEqual(self.answer_address(layer, "SIP/2.0/UDP 10.0.0.1:5070", src),
                         Address("udp", "192.0.2.1", 5070))
        layer = TransactionLayer(symmetric_responses=False)
        self.assertEqual(self.answer_address(layer, "SIP/2.0/UDP 10.0.0.1", src),
                         Address("udp", "192.0.2.1", 5060))

    def test_rport_is_symmetric(self):
        layer = TransactionLayer(symmetric_responses=False)
        src = Address("udp", "192.0.2.1", 40001)
        self.assertEqual(self.answer_address(layer, "SIP/2.0/UDP 10.0.0.1:5070;rport", src), src)

    def test_stream_goes_back_on_the_connection(self):
        layer = TransactionLayer(symmetric_responses=False)
        conn = object()
        src = Address("tcp", "192.0.2.1", 40001, conn)
        dest = self.answer_address(layer, "SIP/2.0/TCP 10.0.0.1:5070", src)
        self.assertIs(dest.connection, conn)


class FinalTagTests(SynchronousTestCase):
    def test_ack_matches_tag_of_final_not_of_provisional(self):
        layer = TransactionLayer()
        invite = request(branch="old")
        layer.receive_request(invite, UAC, 0.0)
        [event] = layer.next_events()
        tx = event.transaction
        layer.send_response(tx, make_response(invite, 180, to_tag="early"), 0.1)
        layer.send_response(tx, make_response(invite, 480, to_tag="final"), 0.2)
        self.assertEqual(tx.to_tag, "final")
        layer.receive_request(request("ACK", branch="old", to_tag="final"), UAC, 0.3)
        self.assertEqual(tx.state, CONFIRMED)
        self.assertEqual(layer.next_events(), [])


class HousekeepingTests(SynchronousTestCase):
    def test_cancelled_timers_are_compacted(self):
        layer = TransactionLayer()
        for i in range(1000):
            req = client_request("OPTIONS", branch=f"z9hG4bK-{i}")
            layer.send_request(req, UAS_TCP, 0.0)
            layer.receive_response(response_to(req, 200), UAS_TCP, 0.0)
        self.assertEqual(len(layer), 0)
        self.assertEqual(len(layer.timers._heap), 1000)   # lazily cancelled F timers
        self.assertEqual(len(layer.timers), 0)
        layer.handle_timer(0.1)
        self.assertEqual(layer.timers._heap, [])          # compacted
        self.assertIsNone(layer.get_timer())

    def test_counters_and_truth(self):
        layer = TransactionLayer()
        self.assertEqual(len(layer), 0)
        self.assertTrue(layer)
        layer.receive_request(request("OPTIONS"), UAC, 0.0)
        layer.receive_request(request("OPTIONS"), UAC, 0.1)
        layer.receive_response(response_to(request(branch="z9hG4bK-x"), 200), UAS, 0.2)
        self.assertEqual(layer.counters["retransmissions_received"], 1)
        self.assertEqual(layer.counters["stray_responses"], 1)
        tx = layer.send_request(client_request("OPTIONS", branch="z9hG4bK-o"), UAS, 0.0)
        run(layer, 100)
        self.assertEqual(layer.counters["retransmissions_sent"], 10)
        self.assertEqual(layer.counters["timeouts"], 1)
        self.assertEqual(tx.state, TERMINATED)

    def test_2xx_after_non_2xx_goes_to_tu_without_transaction(self):
        layer = TransactionLayer()
        invite = client_request()
        layer.send_request(invite, UAS, 0.0)
        layer.receive_response(response_to(invite, 486), UAS, 0.1)
        layer.next_events()
        late = response_to(invite, 200, to_tag="fork")
        layer.receive_response(late, UAS, 0.2)
        self.assertEqual(layer.next_events(), [ResponseReceived(late, UAS, None)])

    def test_ack_before_final_is_dropped(self):
        layer = TransactionLayer()
        layer.receive_request(request(), UAC, 0.0)
        [event] = layer.next_events()
        layer.receive_request(request("ACK"), UAC, 0.1)
        self.assertEqual(layer.next_events(), [])
        self.assertEqual(event.transaction.state, PROCEEDING)


class ClockDriverTests(SynchronousTestCase):
    """The shell keeps one IDelayedCall armed at get_timer(); driven by task.Clock."""

    def test_one_delayed_call_drives_all_timers(self):
        from twisted.internet.task import Clock
        clock, layer, sent, events = Clock(), TransactionLayer(), [], []
        armed = []

        def rearm():
            while armed:
                call = armed.pop()
                if call.active():
                    call.cancel()
            when = layer.get_timer()
            if when is not None:
                armed.append(clock.callLater(max(0.0, when - clock.seconds()), fire))

        def fire():
            layer.handle_timer(clock.seconds())
            drain()

        def drain():
            sent.extend(clock.seconds() for _ in layer.datagrams_to_send())
            events.extend(layer.next_events())
            rearm()

        invite = client_request()
        tx = layer.send_request(invite, UAS, clock.seconds())
        drain()
        for _ in range(4):
            clock.advance(0.5)
        layer.receive_response(response_to(invite, 180), UAS, clock.seconds())
        drain()
        for _ in range(40):
            clock.advance(1.0)
        self.assertEqual(sent, [0.0, 0.5, 1.5])
        self.assertEqual([type(e) for e in events], [ResponseReceived])
        layer.cancel(tx, clock.seconds())
        drain()
        for _ in range(40):
            clock.advance(1.0)
        self.assertEqual(events[-1], TransactionTimedOut(tx))
        self.assertEqual(len(layer), 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_tu_cancel_already_sent(self):
        layer = TransactionLayer()
        invite = client_request()
        tx = layer.send_request(invite, UAS, 0.0)
        own = layer.send_request(layer.cancel(tx, 0.0), UAS, 0.0)
        layer.receive_response(response_to(invite, 180), UAS, 0.1)
        self.assertIs(tx.cancel_transaction, own)
