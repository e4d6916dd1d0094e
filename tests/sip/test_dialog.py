# -*- test-case-name: tests.sip.test_dialog -*-
"""Dialogs (mss.sip.dialog, RFC 3261 §12): creation on either side, route sets, remote target
refresh, in-dialog request construction (loose and strict routing), CSeq rules."""
from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from mss.sip.address import Address
from mss.sip.dialog import Dialog
from mss.sip.parser import parse

FLOW = Address("udp", "192.0.2.9", 5070)

INVITE = (b"INVITE sip:bob@example.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n"
          b"Record-Route: <sip:p1.example.com;lr>\r\n"
          b"Record-Route: <sip:p2.example.com;lr>\r\n"
          b"From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
          b"To: <sip:bob@example.com>\r\n"
          b"Call-ID: c1@example.com\r\n"
          b"CSeq: 7 INVITE\r\n"
          b"Contact: <sip:alice@192.0.2.1:5060>\r\n"
          b"Content-Length: 0\r\n\r\n")


def response(status=200, tag="b1", contact="<sip:bob@192.0.2.2:5062>",
             rr=(b"<sip:p2.example.com;lr>", b"<sip:p1.example.com;lr>")):
    lines = [b"SIP/2.0 %d OK" % status, b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1"]
    lines += [b"Record-Route: " + r for r in rr]
    lines += [b"From: \"Alice\" <sip:alice@example.com>;tag=a1",
              b"To: <sip:bob@example.com>" + (b";tag=" + tag.encode() if tag else b""),
              b"Call-ID: c1@example.com", b"CSeq: 7 INVITE"]
    if contact:
        lines.append(b"Contact: " + contact.encode())
    return parse(b"\r\n".join(lines) + b"\r\nContent-Length: 0\r\n\r\n")[0]


class UACDialogTests(SynchronousTestCase):
    def setUp(self):
        self.invite = parse(INVITE)[0]

    def test_from_response(self):
        d = Dialog.from_uac(self.invite, response(), FLOW, "sip:alice@192.0.2.1:5060")
        self.assertEqual(d.id, ("c1@example.com", "a1", "b1"))
        self.assertEqual(d.local_uri, '"Alice" <sip:alice@example.com>')
        self.assertEqual(d.remote_uri, "<sip:bob@example.com>")
        self.assertEqual(str(d.remote_target), "sip:bob@192.0.2.2:5062")
        # §12.1.2: the UAC's route set is the Record-Route in reverse order
        self.assertEqual(d.route_set, ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
        self.assertEqual(d.local_cseq, 7)
        self.assertIsNone(d.remote_cseq)
        self.assertFalse(d.early)
        self.assertIsNone(d.prack_rseq)

    def test_early_then_confirmed(self):
        early = Dialog.from_uac(self.invite, response(180, rr=(b"<sip:p9.example.com;lr>",)),
                                FLOW, "sip:me@h")
        self.assertTrue(early.early)
        self.assertEqual(early.route_set, ["<sip:p9.example.com;lr>"])
        early.update_from_response(response(200, contact="<sip:bob@192.0.2.3>"))
        self.assertFalse(early.early)
        self.assertEqual(early.route_set, ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
        self.assertEqual(str(early.remote_target), "sip:bob@192.0.2.3")

    def test_request_with_loose_routes(self):
        d = Dialog.from_uac(self.invite, response(), FLOW, "sip:alice@192.0.2.1:5060")
        bye = d.request("BYE")
        self.assertEqual(str(bye.uri), "sip:bob@192.0.2.2:5062")
        self.assertEqual(bye.headers.get_lines("route"),
                         ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
        self.assertEqual((bye.cseq.number, bye.cseq.method), (8, "BYE"))
        self.assertEqual(bye.from_.tag, "a1")
        self.assertEqual(bye.to.tag, "b1")
        self.assertEqual(bye.call_id, "c1@example.com")
        self.assertNotIn("contact", bye.headers)
        reinvite = d.request("INVITE")
        self.assertEqual(reinvite.cseq.number, 9)
        self.assertEqual(reinvite.headers.get("contact"), "<sip:alice@192.0.2.1:5060>")
        ack = d.request("ACK", cseq=7)
        self.assertEqual((ack.cseq.number, ack.cseq.method), (7, "ACK"))
        self.assertEqual(d.local_cseq, 9)

    def test_destination(self):
        d = Dialog.from_uac(self.invite, response(), FLOW, "sip:me@h")
        self.assertEqual(d.destination(), Address("udp", "p1.example.com", 5060))
        d.route_set = []
        self.assertEqual(d.destination(), FLOW)
        d.route_set = ["<sip:192.0.2.9:5070;lr>"]
        self.assertIs(d.destination(), FLOW)            # the flow keeps its connection
        d.route_set = ["<sip:10.0.0.1:5080;transport=tcp;lr>"]
        self.assertEqual(d.destination(), Address("tcp", "10.0.0.1", 5080))

    def test_strict_router(self):
        """§12.2.1.1: a first route without ``lr`` becomes the Request-URI and the remote
        target goes last in the Route header."""
        d = Dialog.from_uac(self.invite, response(rr=(b"<sip:p2.example.com;lr>",
                                                       b"<sip:strict.example.com>")),
                            FLOW, "sip:me@h")
        bye = d.request("BYE")
        self.assertEqual(str(bye.uri), "sip:strict.example.com")
        self.assertEqual(bye.headers.get_lines("route"),
                         ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.2:5062>"])

    def test_no_contact_keeps_request_uri(self):
        d = Dialog.from_uac(self.invite, response(contact=None), FLOW, "sip:me@h")
        self.assertEqual(str(d.remote_target), "sip:bob@example.com")


class UASDialogTests(SynchronousTestCase):
    def setUp(self):
        self.invite = parse(INVITE)[0]
        self.d = Dialog.from_uas(self.invite, "b1", FLOW, "sip:bob@192.0.2.2:5062")

    def test_from_request(self):
        d = self.d
        self.assertEqual(d.id, ("c1@example.com", "b1", "a1"))
        self.assertEqual(d.local_uri, "<sip:bob@example.com>")
        self.assertEqual(d.remote_uri, '"Alice" <sip:alice@example.com>')
        self.assertEqual(str(d.remote_target), "sip:alice@192.0.2.1:5060")
        # §12.1.1: the UAS keeps the Record-Route order
        self.assertEqual(d.route_set, ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
        self.assertEqual((d.local_cseq, d.remote_cseq), (0, 7))

    def test_request_from_the_uas(self):
        bye = self.d.request("BYE")
        self.assertEqual(bye.headers.get("from"), "<sip:bob@example.com>;tag=b1")
        self.assertEqual(bye.headers.get("to"), '"Alice" <sip:alice@example.com>;tag=a1')
        self.assertEqual(bye.cseq.number, 1)
        self.assertEqual(str(bye.uri), "sip:alice@192.0.2.1:5060")

    def in_dialog(self, method, cseq, contact=None):
        text = (f"{method} sip:bob@192.0.2.2:5062 SIP/2.0\r\n"
                "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-2\r\n"
                "From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n"
                f"Call-ID: c1@example.com\r\nCSeq: {cseq} {method}\r\n")
        if contact:
            text += f"Contact: {contact}\r\n"
        return parse((text + "Content-Length: 0\r\n\r\n").encode())[0]

    def test_remote_cseq(self):
        """§12.2.2: lower CSeq is out of order; ACK and CANCEL do not move it."""
        self.assertTrue(self.d.accept_remote_cseq(self.in_dialog("INFO", 8)))
        self.assertEqual(self.d.remote_cseq, 8)
        self.assertFalse(self.d.accept_remote_cseq(self.in_dialog("INFO", 5)))
        self.assertTrue(self.d.accept_remote_cseq(self.in_dialog("ACK", 7)))
        self.assertEqual(self.d.remote_cseq, 8)
        self.assertTrue(self.d.accept_remote_cseq(self.in_dialog("BYE", 9)))

    def test_target_refresh(self):
        self.d.target_refresh(self.in_dialog("INVITE", 8, "<sip:alice@198.51.100.7:5099>"))
        self.assertEqual(str(self.d.remote_target), "sip:alice@198.51.100.7:5099")
        self.d.target_refresh(self.in_dialog("UPDATE", 9))          # no Contact: unchanged
        self.assertEqual(str(self.d.remote_target), "sip:alice@198.51.100.7:5099")

    def test_tag_removed_from_uris_with_other_params(self):
        invite = parse(INVITE.replace(b";tag=a1", b";x=1;tag=a1;y=2"))[0]
        d = Dialog.from_uas(invite, "b1", FLOW, "sip:bob@h")
        self.assertNotIn("tag=", d.remote_uri)
        self.assertIn("x=1", d.remote_uri)
        self.assertIn("y=2", d.remote_uri)
        self.assertEqual(d.remote_tag, "a1")

    def test_display_name_kept_as_written(self):
        """A display name that needs its quotes keeps them in requests of the dialog."""
        invite = parse(INVITE.replace(b'"Alice"', b'"Smith, Alice"'))[0]
        d = Dialog.from_uas(invite, "b1", FLOW, "sip:bob@h")
        self.assertEqual(d.remote_uri, '"Smith, Alice" <sip:alice@example.com>')
        bye = d.request("BYE")
        self.assertEqual(bye.to.display, "Smith, Alice")
        self.assertEqual(bye.to.tag, "a1")


class RouteSetTests(SynchronousTestCase):
    def test_unusable_record_route_is_dropped(self):
        """A route set we cannot follow is dropped whole: requests go to the flow instead of
        failing when one is built."""
        invite = parse(INVITE)[0]
        for bad in (b"garbage<<", b"<sip:@>", b"<tel:123>"):
            d = Dialog.from_uac(invite, response(rr=(b"<sip:p2.example.com;lr>", bad)), FLOW,
                                "sip:me@h")
            self.assertEqual(d.route_set, [], bad)
            self.assertEqual(d.destination(), FLOW)
            self.assertEqual(str(d.request("PRACK").uri), "sip:bob@192.0.2.2:5062")
