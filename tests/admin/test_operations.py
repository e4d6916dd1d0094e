# -*- test-case-name: tests.admin.test_operations -*-
"""Tests for mss.admin.operations: live rows, hangup, per-extension/per-trunk SIP trace,
SIGHUP reload and the graceful drain, on an in-process switch with real live calls."""
from __future__ import annotations

import os
import signal

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from mss.admin.operations import Operations, OperationError, TraceSelection, control_socket_path
from mss.admin.service import OperationsService
from mss.sip.parser import parse
from tests.admin.phones import LiveSwitch, Phone, live_call, provision


def _msg(text: str):
    return parse(text.replace("\n", "\r\n").encode())[0]


def _register(from_user: str, host: str = "mss.test", via_host: str = "127.0.0.1"):
    return _msg(f"REGISTER sip:{host} SIP/2.0\nVia: SIP/2.0/UDP {via_host}:5062;branch=z9hG4bKx\n"
                f"From: <sip:{from_user}@{host}>;tag=1\nTo: <sip:{from_user}@{host}>\n"
                "Call-ID: c\nCSeq: 1 REGISTER\nContent-Length: 0\n\n")


def _is_trace(event) -> bool:
    return event.get("log_format", "").startswith(("SIP {direction}", "SIP out"))


class FakeEngine:
    def __init__(self):
        self.reloads = 0

    def reload(self):
        self.reloads += 1
        return {"loaded": ["x"], "failed": {}}

    def status(self):
        return [{"name": "x", "state": "active", "priority": 10, "hooks": ["originating"],
                 "calls": 3, "faults": 1, "last_error": ""}]


class Base(SynchronousTestCase):
    def setUp(self):
        self.live = LiveSwitch(self.mktemp(), {"shutdown": {"grace_period": 10}})
        self.addCleanup(self.live.close)
        provision(self.live, "1001", "1002", "1003")
        self.a = Phone(self.live, "1001", "pw-1001", 40001)
        self.b = Phone(self.live, "1002", "pw-1002", 40002)
        self.switch = self.live.switch
        self.ops = Operations(self.switch, wall=self.live.reactor.seconds)


class RowsTests(Base):
    def test_calls_and_registrations(self):
        call_id = live_call(self.live, self.a, self.b)
        self.live.advance(75)
        [row] = self.ops.calls()
        self.assertEqual((row["call_id"], row["caller"], row["callee"], row["state"]),
                         (call_id, "1001", "1002", "answered"))
        self.assertEqual(row["talking"], 75.0)
        self.assertIn("40002", row["device"])
        table = str(self.ops.calls_table())
        self.assertIn(call_id, table)
        self.assertIn("0:01:15", table)
        [reg] = self.ops.registrations()
        self.assertEqual(reg["extension"], "1002")
        self.assertEqual(reg["source"], "udp:127.0.0.1:40002")
        self.assertEqual(reg["expires"], 300 - 75)
        self.assertEqual(self.ops.summary()["calls"], 1)

    def test_empty_tables_say_so(self):
        self.assertEqual(str(self.ops.calls_table()), "no live calls")
        self.assertEqual(repr(self.ops.registrations_table()), "no registrations")
        self.switch.service_engine = None          # a switch built without services
        self.assertEqual(str(self.ops.services_table()), "no service engine in this switch")

    def test_services_from_engine(self):
        self.switch.service_engine = FakeEngine()
        self.assertIn("originating", str(self.ops.services_table()))
        self.assertEqual(self.ops.reload_services(), {"loaded": ["x"], "failed": {}})

    def test_reload_without_engine(self):
        # the MultiService's own ``services`` list is not an engine
        self.switch.service_engine = None
        self.assertRaises(OperationError, self.ops.reload_services)

    def test_trunk_calls_counted_per_direction(self):
        live_call(self.live, self.a, self.b)
        call = next(iter(self.switch.calls.calls.values()))
        call.trunk = "carrier"
        call.direction = "inbound"

        class Trunks:
            def status(self):
                return [{"name": "carrier", "domain": "sip.carrier.test",
                         "proxy": "10.0.0.1", "state": "registered"}]
        self.switch.trunks = Trunks()
        [row] = self.ops.trunks()
        self.assertEqual(row["calls"], {"inbound": 1})
        self.assertIn("inbound=1", str(self.ops.trunks_table()))


class DispatcherTrunkTests(Base):
    """The switch's real TrunkDispatcher with a provisioned trunk."""

    def setUp(self):
        super().setUp()
        from mss.store.records import Trunk
        self.switch.store.put_trunk(Trunk(name="carrier", domain="ims.carrier.test",
                                          account="5550100", password="x",
                                          proxy="192.0.2.10:5060", register=False))
        self.switch.trunks.reload()

    def test_rows_state_and_active_calls(self):
        [row] = self.ops.trunks()
        self.assertEqual((row["name"], row["proxy"], row["state"], row["calls"]),
                         ("carrier", "192.0.2.10:5060", "no registration",
                          {"in": 0, "out": 0}))
        self.switch.trunks.active[("carrier", "out")] = 2      # as acquire() counts them
        self.assertEqual(self.ops.trunks()[0]["calls"], {"in": 0, "out": 2})
        self.assertIn("ims.carrier.test", str(self.ops.trunks_table()))

    def test_trace_by_trunk_matches_domain_and_proxy(self):
        state = self.ops.trace(True, trunk="carrier")
        self.assertEqual(state["trunks"], ["carrier"])
        sel = self.switch.core.trace_filter
        self.assertTrue(sel(_register("5550100", host="ims.carrier.test")))
        self.assertTrue(sel(_register("x", via_host="192.0.2.10")))
        self.assertFalse(sel(_register("1001")))
        self.ops.trace(False, trunk="carrier")
        self.assertFalse(self.switch.core.trace)


class HangupTests(Base):
    def test_hangup_sends_bye_both_ways_and_writes_cdr(self):
        call_id = live_call(self.live, self.a, self.b)
        result = self.ops.hangup(call_id)
        self.assertEqual(result["state"], "ended")
        self.assertTrue(self.a.answer_bye())
        self.assertTrue(self.b.answer_bye())
        self.assertEqual(self.switch.calls.calls, {})
        [cdr] = [c for c in self.switch.store.list_cdrs() if c.call_id == call_id]
        self.assertEqual((cdr.disposition, cdr.cause), ("answered", "hangup by operator"))

    def test_hangup_unknown_call(self):
        e = self.assertRaises(OperationError, self.ops.hangup, "nope@x")
        self.assertIn("nope@x", str(e))


class TraceTests(Base):
    def test_selection_matches_extension_in_from_to_or_uri(self):
        sel = TraceSelection()
        sel.extensions.add("1001")
        self.assertTrue(sel(_register("1001")))
        self.assertFalse(sel(_register("1002")))
        invite = _msg("INVITE sip:1001@mss.test SIP/2.0\nVia: SIP/2.0/UDP h:1;branch=z9hG4bKy\n"
                      "From: <sip:1009@mss.test>;tag=1\nTo: <sip:1001@mss.test>\nCall-ID: c\n"
                      "CSeq: 1 INVITE\nContent-Length: 0\n\n")
        self.assertTrue(sel(invite))

    def test_selection_matches_trunk_hosts(self):
        sel = TraceSelection()
        sel.trunks["carrier"] = frozenset({"sip.carrier.test", "10.0.0.1"})
        self.assertTrue(sel(_register("5550", host="sip.carrier.test")))
        self.assertTrue(sel(_register("5550", via_host="10.0.0.1")))
        self.assertFalse(sel(_register("5550")))

    def test_trace_switches_core(self):
        core = self.switch.core
        self.ops.trace(True, extension="1001")
        self.assertTrue(core.trace)
        self.assertIsInstance(core.trace_filter, TraceSelection)
        self.ops.trace(True)
        self.assertIsNone(core.trace_filter)            # everything
        state = self.ops.trace(False)
        self.assertEqual(state, {"on": False, "all": False, "extensions": [], "trunks": []})
        self.assertFalse(core.trace)
        self.ops.trace(True, extension="1001")
        self.ops.trace(True, extension="1002")
        self.assertEqual(self.ops.trace(False, extension="1001")["extensions"], ["1002"])
        self.assertTrue(core.trace)
        self.ops.trace(False, extension="1002")
        self.assertFalse(core.trace)

    def test_trace_unknown_trunk(self):
        self.assertRaises(OperationError, self.ops.trace, True, trunk="nope")
        self.assertRaises(OperationError, self.ops.trace, True, extension="1", trunk="t")
        self.assertFalse(self.switch.core.trace)

    def test_trace_unknown_extension_refused_and_nothing_traced(self):
        e = self.assertRaises(OperationError, self.ops.trace, True, extension="9999")
        self.assertEqual(str(e), "no extension '9999'")
        self.assertFalse(self.switch.core.trace)
        self.assertEqual(self.ops.trace_selection.extensions, set())

    def test_trace_off_for_what_is_not_traced_says_so(self):
        e = self.assertRaises(OperationError, self.ops.trace, False, extension="1001")
        self.assertEqual(str(e), "extension '1001' is not traced")
        e = self.assertRaises(OperationError, self.ops.trace, False, trunk="nope")
        self.assertEqual(str(e), "trunk 'nope' is not traced")

    def test_trace_logs_only_the_selected_extension(self):
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.ops.trace(True, extension="1002")
        self.a.register()
        traced = [e for e in events if _is_trace(e)]
        self.assertEqual(traced, [])
        self.b.register()
        traced = [e for e in events if _is_trace(e)]
        self.assertEqual({e["direction"] for e in traced if "direction" in e}, {"in"})
        self.assertTrue(any("REGISTER sip:mss.test" in e["text"] for e in traced))
        self.assertTrue(any(e["text"].startswith("SIP/2.0 200") for e in traced))
        self.assertTrue(all("1002" in e["text"] for e in traced))


class ServiceTests(Base):
    def service(self):
        service = OperationsService(self.switch, install_signals=True)
        service.operations.wall = self.live.reactor.seconds
        return service

    def test_control_socket_default_beside_store(self):
        path = control_socket_path(self.switch.settings)
        self.assertEqual(path, os.path.join(os.path.dirname(
            self.switch.settings["store"]["path"]), "mss.ctl"))
        settings = dict(self.switch.settings)
        settings["admin"] = {"control_socket": "/run/mss/ctl"}
        self.assertEqual(control_socket_path(settings), "/run/mss/ctl")

    def test_sighup_reloads_services_and_handler_is_restored(self):
        engine = self.switch.service_engine = FakeEngine()
        before = signal.getsignal(signal.SIGHUP)
        service = self.service()
        calls = []
        self.live.reactor.callFromThread = lambda f, *a: calls.append((f, a))
        service.startService()
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(len(calls), 1)                # deferred to the reactor's turn
        f, a = calls[0]
        f(*a)
        self.assertEqual(engine.reloads, 1)
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), before)

    def test_drain_without_calls_fires_at_once(self):
        service = self.service()
        d = service.drain()
        self.assertIsNone(self.successResultOf(d))
        self.assertFalse(self.switch.calls.accepting)
        self.assertIsNone(self.successResultOf(service.drain()))

    def test_drain_waits_for_calls_to_end(self):
        call_id = live_call(self.live, self.a, self.b)
        service = self.service()
        d = service.drain()
        self.live.advance(5)
        self.assertNoResult(d)
        self.a.bye()                                     # the caller hangs up in time
        self.live.advance(0)
        self.assertTrue(self.b.answer_bye())              # the relayed BYE is answered
        self.live.advance(1)
        self.successResultOf(d)
        [cdr] = [c for c in self.switch.store.list_cdrs() if c.call_id == call_id]
        self.assertEqual(cdr.disposition, "answered")
        self.assertNotIn("shutdown", cdr.cause)

    def test_drain_ends_calls_after_grace_period(self):
        call_id = live_call(self.live, self.a, self.b)
        c = Phone(self.live, "1003", "pw-1003", 40003)
        second = live_call(self.live, c, self.a)          # 1003 -> 1001 (registers 1001)
        service = self.service()
        d = service.drain()
        second_wait = service.drain()
        self.live.advance(9.9)
        self.assertNoResult(d)
        self.assertEqual(len(self.switch.calls.calls), 2)
        self.live.advance(0.1)                            # grace over: BYE on every leg
        self.assertEqual(self.switch.calls.calls, {})
        self.assertNoResult(d)                            # BYEs not answered yet
        self.assertEqual([p.answer_bye() for p in (self.a, self.b, c)], [2, 1, 1])
        self.live.reactor.pump([0.1] * 10)
        self.successResultOf(d)
        self.successResultOf(second_wait)
        cdrs = {c.call_id: c for c in self.switch.store.list_cdrs()}
        for cid in (call_id, second):
            self.assertEqual(cdrs[cid].cause, "hangup by shutdown")
        stored = {b.aor for b in self.switch.store.list_bindings(self.live.reactor.seconds())}
        self.assertEqual(stored, {"1001", "1002"})          # the callees registered

    def test_drain_gives_up_on_unanswered_byes(self):
        live_call(self.live, self.a, self.b)
        service = self.service()
        d = service.drain()
        self.live.advance(10)
        self.assertNoResult(d)
        self.live.reactor.pump([0.1] * int(8 * self.switch.core.t1 * 10 - 2))
        self.assertNoResult(d)
        self.live.reactor.pump([0.1] * 4)
        self.successResultOf(d)

    def test_pending_byes_counts_only_unanswered_byes(self):
        live_call(self.live, self.a, self.b)
        self.assertEqual(self.switch.core.layer.unanswered("BYE"), 0)
        self.ops.hangup(next(iter(self.switch.calls.calls)))
        self.assertEqual(self.switch.core.layer.unanswered("BYE"), 2)
