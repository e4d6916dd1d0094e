# -*- test-case-name: tests.call.test_services -*-
"""The call core with the Lua services (mss.call.services and the hooks in mss.call.manager
and mss.call.call): ``ServiceHooks`` facts and callee state, and calls through a real
``CallManager`` with the real ``ServiceEngine`` running the bundled lua/services over the
test switch's SQLite store, driven by ``task.Clock`` (tests.call.fakes)."""
from __future__ import annotations

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from mss.call.services import ServiceHooks, diversion_header
from mss.registrar.auth import AuthOutcome
from mss.services.api import CONTINUE_DECISION, Decision
from mss.services.engine import ServiceEngine
from mss.sip.message import make_response
from mss.sip.parser import parse
from tests.call.fakes import REALM, FakeAuth, Switch, sdp
from tests.trunk.test_calls import TrunkCallTestCase


def _request(*headers, user="1001"):
    lines = [f"INVITE sip:1002@{REALM} SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1",
             f"From: <sip:{user}@{REALM}>;tag=a", f"To: <sip:1002@{REALM}>", "Call-ID: c1",
             "CSeq: 1 INVITE", *headers, "Content-Length: 0"]
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode())[0]


class HooksTests(SynchronousTestCase):
    """ServiceHooks: the facts the services see and the callee's state."""

    def setUp(self):
        self.sw = Switch(self)
        self.sw.store.add_extension("1001", "pw-1001", REALM, name="Alice",
                                    permissions=("forward",), call_level=3)
        self.sw.extension("1002")
        self.sw.directory.invalidate()
        self.in_call = {}
        self.hooks = ServiceHooks(None, self.sw.directory, self.sw.bindings, lambda: 1234.5,
                                  self.in_call)

    def facts(self, request, caller="1001", caller_ext="1001"):
        return self.hooks.facts(request, "c1", caller, "1002", display=None,
                                caller_ext=caller_ext, direction="internal")

    def test_facts(self):
        f = self.facts(_request("User-Agent: phone/1", "X-Other: no", "Subject: hi"))
        self.assertEqual((f.caller, f.callee, f.callee_display, f.time), ("1001", "1002", "", 1234.5))
        self.assertEqual((f.caller_level, f.caller_is_extension, f.anonymous), (3, True, False))
        self.assertIn("forward", f.caller_permissions)
        self.assertEqual(dict(f.headers), {"user-agent": "phone/1", "subject": "hi"})

    def test_outside_caller(self):
        f = self.facts(_request(user="+861234"), caller="+861234", caller_ext=None)
        self.assertEqual((f.caller_level, f.caller_is_extension, f.caller_permissions),
                         (0, False, frozenset()))

    def test_anonymous(self):
        """Privacy: id, a From without user or with user anonymous: anonymous, even when the
        caller is known from its credentials (a phone hiding its number)."""
        self.assertTrue(self.facts(_request("Privacy: id")).anonymous)
        self.assertTrue(self.facts(_request("Privacy: none;user")).anonymous)
        self.assertFalse(self.facts(_request("Privacy: none")).anonymous)
        self.assertTrue(self.facts(_request(user="anonymous")).anonymous)
        self.assertTrue(self.facts(_request(user="Anonymous"), caller="anonymous",
                                   caller_ext=None).anonymous)

    def test_callee_state(self):
        s = self.hooks.callee_state("1002", call_waiting_blocks=True)
        self.assertEqual((s.exists, s.registered, s.busy, s.in_call, s.devices),
                         (True, False, False, False, 0))
        self.sw.phone("1002", 5072)
        self.sw.phone("1002", 5073)
        self.in_call["1002"] = 1
        s = self.hooks.callee_state("1002", call_waiting_blocks=True)
        self.assertEqual((s.registered, s.busy, s.in_call, s.devices), (True, True, True, 2))
        self.assertFalse(self.hooks.callee_state("1002", call_waiting_blocks=False).busy)
        self.assertFalse(self.hooks.callee_state("1999", True).exists)

    def test_without_engine(self):
        f = self.facts(_request())
        self.assertFalse(self.hooks.active)
        self.assertIsNone(self.hooks.feature("*78", f))
        for decision in (self.hooks.originating(f), self.hooks.busy(f), self.hooks.no_answer(f),
                         self.hooks.terminating(f, self.hooks.callee_state("1002", False))):
            self.assertIs(decision, CONTINUE_DECISION)

    def test_diversion_header(self):
        self.assertEqual(diversion_header("1002", REALM, Decision.redirect("1003", "busy")),
                         f"<sip:1002@{REALM}>;reason=user-busy;counter=1")


class AnyUserAuth(FakeAuth):
    """FakeAuth that also accepts a hidden From (expected_user None) as extension 1001."""

    def check(self, request, source_host, now, proxy, expected_user=None):
        self.expected = expected_user
        if expected_user is None and "proxy-authorization" in request.headers:
            return AuthOutcome("ok", extension=self.directory("1001"))
        return super().check(request, source_host, now, proxy, expected_user)


class FakeRooms:
    """A media anchor with mixing rooms (the gateway's room-join/room-leave)."""

    def __init__(self):
        self.joined = []
        self.left = []
        self.deleted = []

    def offer(self, call_id, from_tag, body, leg_label=""):
        return defer.succeed(body)

    def answer(self, call_id, from_tag, to_tag, body, leg_label=""):
        return defer.succeed(body)

    def delete(self, call_id):
        self.deleted.append(call_id)

    def room_join(self, room, call_id, from_tag, body=None):
        self.joined.append((room, call_id, from_tag, body is not None))
        return defer.succeed(sdp(7000) if body is not None else None)

    def room_leave(self, call_id, from_tag):
        self.left.append((call_id, from_tag))
        return defer.succeed(None)


class ServiceCallTests(SynchronousTestCase):
    """Calls through the manager with the bundled services."""

    def setUp(self):
        self.sw = Switch(self, no_answer_timeout=30)
        self.sw.auth = self.sw.calls.auth = AnyUserAuth(self.sw.directory)
        store = self.sw.store
        store.add_extension("1000", "pw-1000", REALM, permissions=("break_in",))
        store.add_extension("1001", "pw-1001", REALM)
        store.add_extension("1002", "pw-1002", REALM, permissions=("forward",))
        store.add_extension("1003", "pw-1003", REALM)
        store.add_extension("1009", "pw-1009", REALM, permissions=("overstep",))
        self.sw.directory.invalidate()
        m = self.sw.calls
        self.engine = ServiceEngine(store, None, clock=self.sw.clock.seconds, seed=7,
                                    in_call=lambda ext: ext in m.in_call)
        self.engine.reload()
        m.set_engine(self.engine, 5)
        self.a = self.sw.phone("1001", 5071)

    def data(self, service, ext):
        return self.sw.store.get_extension_data(service, ext)

    def feature(self, phone, code):
        call = phone.invite(code)
        return call, phone.take(200, self)

    def test_feature_code_answered_locally(self):
        """*93*1003: stored, answered with an inactive SDP, BYE from the switch after 2 s."""
        p = self.sw.phone("1002", 5072)
        call, ok = self.feature(p, "*93*1003")
        self.assertEqual(self.data("forwarding", "1002"), {"unconditional": "1003"})
        self.assertIn(b"a=inactive", ok.body)
        call.ack(ok)
        self.assertFalse(p.has("BYE"))
        self.sw.advance(2.1)
        bye = p.take("BYE", self)
        p.send(make_response(bye, 200))
        self.sw.assert_clean(self)

    def test_unclaimed_code_is_a_number(self):
        self.a.invite("*55")
        self.a.take(404, self)

    def test_malformed_forward_code(self):
        """*93*x from 1002: answered with the error tone, nothing stored."""
        self.feature(self.sw.phone("1002", 5072), "*93*x")
        self.assertEqual(self.data("forwarding", "1002"), {})

    def test_busy_forward_when_call_waiting_is_off(self):
        """1002 is in a call and has call waiting off: the terminating hook sees it busy
        and the call goes to 1003 at once (the manager's in_call reaches the hooks)."""
        self.sw.store.set_permission("1002", "call_waiting_off", True)
        self.sw.directory.invalidate()
        self.engine.store.set_extension_data("forwarding", "1002", "busy", "1003")
        self.engine.invalidate_caches()
        self.answered_call()
        c = self.sw.phone("1003", 5073)
        other = self.sw.phone("1009", 5074, register=False)
        other.invite("1002")
        self.assertIn("reason=user-busy", c.incoming().invite.headers.get("diversion"))

    def test_unconditional_forward(self):
        self.engine.store.set_extension_data("forwarding", "1002", "unconditional", "1003")
        self.engine.invalidate_caches()
        self.sw.phone("1002", 5072)
        c = self.sw.phone("1003", 5073)
        self.a.invite("1002")
        leg = c.incoming()
        self.assertEqual(leg.invite.headers.get("diversion"),
                         f"<sip:1002@{REALM}>;reason=unconditional;counter=1")
        self.assertEqual(leg.invite.to.uri.number, "1003")
        self.assertEqual(self.sw.phones[("127.0.0.1", 5072)].kinds(), [])

    def test_busy_forward(self):
        self.engine.store.set_extension_data("forwarding", "1002", "busy", "1003")
        self.engine.invalidate_caches()
        b = self.sw.phone("1002", 5072)
        c = self.sw.phone("1003", 5073)
        self.a.invite("1002")
        b.incoming().respond(486)
        self.assertIn("reason=user-busy", c.incoming().invite.headers.get("diversion"))
        self.assertFalse(self.a.has(486))

    def test_no_answer_forward_with_ring_time(self):
        """*92*1003*4: 1002 rings 4 s (not the 30 s default), gets CANCEL, 1003 rings."""
        p = self.sw.phone("1002", 5072)
        self.feature(p, "*92*1003*4")
        p.inbox.clear()
        c = self.sw.phone("1003", 5073)
        self.a.invite("1002")
        p.incoming().respond(180)
        self.sw.advance(3.9)
        self.assertFalse(c.has("INVITE"))
        self.sw.advance(0.2)
        self.assertTrue(p.has("CANCEL"))
        self.assertIn("reason=no-answer", c.incoming().invite.headers.get("diversion"))

    def test_busy_forward_to_a_target_with_dnd(self):
        """1002 busy -> 1003, which has DND on: the caller gets 1003's 486 Do Not Disturb
        and 1003's phone never rings."""
        self.engine.store.set_extension_data("forwarding", "1002", "busy", "1003")
        self.engine.store.set_extension_data("dnd", "1003", "on", True)
        self.engine.invalidate_caches()
        b = self.sw.phone("1002", 5072)
        c = self.sw.phone("1003", 5073)
        self.a.invite("1002")
        b.incoming().respond(486)
        self.assertEqual(self.a.take(486, self).reason, "Do Not Disturb")
        self.assertEqual(c.kinds(), [])

    def test_no_answer_forward_follows_the_targets_forwarding(self):
        """1002 no answer -> 1003 (no device, forwards when unreachable) -> 1009: 1009's
        INVITE carries both diversions, newest first."""
        self.sw.store.set_permission("1003", "forward", True)
        self.sw.directory.invalidate()
        self.engine.store.set_extension_data("forwarding", "1002", "no_answer", "1003")
        self.engine.store.set_extension_data("forwarding", "1002", "ring_time", 5)
        self.engine.store.set_extension_data("forwarding", "1003", "unreachable", "1009")
        self.engine.invalidate_caches()
        b = self.sw.phone("1002", 5072)
        d = self.sw.phone("1009", 5079)
        self.a.invite("1002")
        b.incoming().respond(180)
        self.sw.advance(5.1)
        diversions = d.incoming().invite.headers.get_lines("diversion")
        self.assertEqual([v.split(";")[0] for v in diversions],
                         [f"<sip:1003@{REALM}>", f"<sip:1002@{REALM}>"])
        self.assertIn("reason=unavailable", diversions[0])

    def test_busy_forward_to_an_unreachable_target(self):
        """The target has no device and no forwarding: the caller gets the callee's 486."""
        self.engine.store.set_extension_data("forwarding", "1002", "busy", "1003")
        self.engine.invalidate_caches()
        b = self.sw.phone("1002", 5072)
        self.a.invite("1002")
        b.incoming().respond(486)
        self.a.take(486, self)

    def test_forward_loop_refused(self):
        """1002 -> 1003 -> 1002: the redirect back is refused; 1003's phone rings."""
        self.sw.store.set_permission("1003", "forward", True)
        self.sw.directory.invalidate()
        self.engine.store.set_extension_data("forwarding", "1002", "unconditional", "1003")
        self.engine.store.set_extension_data("forwarding", "1003", "unconditional", "1002")
        self.engine.invalidate_caches()
        self.sw.phone("1002", 5072)
        c = self.sw.phone("1003", 5073)
        self.a.invite("1002")
        self.assertEqual(len(c.incoming().invite.headers.get_lines("diversion")), 1)

    def test_forwarded_leg_needs_the_forwarding_extensions_level(self):
        """1002 (level 0) forwards to 2xxx, which needs level 2: the call is refused 403
        even though the caller 1001 has level 5 (no toll fraud through forwarding)."""
        self.sw.store.set_call_level("1001", 5)
        self.sw.directory.invalidate()
        self.sw.store.add_row("call_levels", "prefixes", {"prefix": "2", "level": 2})
        self.engine.store.set_extension_data("forwarding", "1002", "unconditional", "2001")
        self.engine.invalidate_caches()
        self.a.invite("1002")
        self.a.take(403, self)
        self.assertIn("call_levels", self.sw.cdrs()[0].cause)

    def test_dnd_rejects_with_cdr(self):
        p = self.sw.phone("1002", 5072)
        self.feature(p, "*78")
        p.inbox.clear()
        self.a.invite("1002")
        resp = self.a.take(486, self)
        self.assertEqual(resp.reason, "Do Not Disturb")
        self.assertEqual(p.kinds(), [])
        self.assertIn("dnd", [c for c in self.sw.cdrs() if c.callee == "1002"][0].cause)

    def test_hidden_number(self):
        """From anonymous, credentials of 1001: accepted as 1001 (the auth is not asked for a
        particular user), refused by the black list row anonymous/*/100, shown anonymous to
        the callee otherwise."""
        hidden = self.sw.phone("anonymous", 5079, register=False)
        self.sw.phone("1002", 5072)
        b = self.sw.phones[("127.0.0.1", 5072)]
        hidden.invite("1002")
        self.assertIsNone(self.sw.auth.expected)
        leg = b.incoming()
        self.assertEqual(str(leg.invite.from_.uri), "sip:anonymous@anonymous.invalid")
        self.assertEqual(leg.invite.from_.display, "Anonymous")
        self.sw.store.add_row("blacklist", "blacklist",
                              {"caller": "anonymous", "called": "*", "rate": 100})
        self.engine.invalidate_caches()
        hidden.invite("1003")
        hidden.take(403, self)
        cdr = [c for c in self.sw.cdrs() if c.callee == "1003"][0]
        self.assertEqual(cdr.caller, "1001")

    # -- break-in ------------------------------------------------------------------------------
    def answered_call(self):
        b = self.sw.phone("1002", 5072)
        out = self.a.invite("1002")
        leg = b.incoming()
        leg.respond(200, sdp(5000))
        ok = self.a.take(200, self)
        out.ack(ok)
        return out, leg

    def test_break_in_without_rooms(self):
        """[media] mode off: no mixer; the operator gets 503, the call is untouched."""
        self.answered_call()
        op = self.sw.phone("1000", 5070)
        op.invite("*75*1002")
        op.take(503, self)
        self.assertEqual(len(self.sw.calls.calls), 1)

    def test_break_in_refusals(self):
        op = self.sw.phone("1000", 5070)
        op.invite("*75*1002")
        op.take(480, self)                       # idle
        op.invite("*75*1009")
        op.take(403, self)                       # protected
        self.a.invite("*75*1002")
        self.a.take(403, self)                   # no right

    def test_break_in_and_operator_leaves(self):
        rooms = self.sw.calls.media = FakeRooms()
        out, leg = self.answered_call()
        victim = self.sw.calls.calls[out.call_id]
        op = self.sw.phone("1000", 5070)
        op_call = op.invite("*75*1002")
        ok = op.take(200, self)
        self.assertIn(b"m=audio 7000", ok.body)
        room = f"barge-{out.call_id}"
        self.assertEqual(rooms.joined, [(room, out.call_id, out.tag, False),
                                        (room, out.call_id, victim.winner.tag, False),
                                        (room, op_call.call_id, op_call.tag, True)])
        op_call.ack(ok)
        op_call.request("BYE")
        op.take(200, self)
        # the operator leaves the room, then the two parties go back to relaying
        self.assertEqual(rooms.left, [(op_call.call_id, op_call.tag), (out.call_id, out.tag),
                                      (out.call_id, victim.winner.tag)])
        self.assertEqual(victim.state, "answered")
        self.assertFalse(self.a.has("BYE") or leg.phone.has("BYE"))

    def test_two_operators(self):
        """While a second operator is still in, the parties stay in the room."""
        rooms = self.sw.calls.media = FakeRooms()
        out, leg = self.answered_call()
        self.sw.store.set_permission("1003", "break_in", True)
        self.sw.directory.invalidate()
        first, second = self.sw.phone("1000", 5070), self.sw.phone("1003", 5073)
        calls = []
        for op in (first, second):
            c = op.invite("*75*1002")
            c.ack(op.take(200, self))
            calls.append(c)
        calls[0].request("BYE")
        self.assertEqual(rooms.left, [(calls[0].call_id, calls[0].tag)])
        calls[1].request("BYE")
        self.assertEqual(len(rooms.left), 4)

    def test_victim_ends_operator_released(self):
        self.sw.calls.media = FakeRooms()
        out, leg = self.answered_call()
        op = self.sw.phone("1000", 5070)
        op_call = op.invite("*75*1001")            # either party of the call
        op_call.ack(op.take(200, self))
        out.request("BYE")
        self.a.take(200, self)
        self.assertTrue(op.has("BYE"))


class HiddenNumberOutTests(TrunkCallTestCase):
    """A phone hiding its number calls out through a trunk."""

    def setUp(self):
        super().setUp()
        self.sw.auth = self.sw.calls.auth = AnyUserAuth(self.sw.directory)
        self.hidden = self.sw.phone("anonymous", 5069, register=False)

    def test_privacy_id_added(self):
        self.hidden.invite("0755123")
        invite = self.c1.incoming().invite
        self.assertEqual(invite.headers.get_lines("privacy"), ["id"])

    def test_phones_own_privacy_kept(self):
        self.hidden.invite("0755123", headers=(("Privacy", "id;critical"),))
        self.assertEqual(self.c1.incoming().invite.headers.get_lines("privacy"), ["id;critical"])

    def test_number_shown(self):
        self.a.invite("0755123")
        self.assertEqual(self.c1.incoming().invite.headers.get_lines("privacy"), [])
