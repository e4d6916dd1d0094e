# -*- test-case-name: tests.admin.test_metrics -*-
"""Prometheus metrics: the text exposition format (version 0.0.4) over HTTP.

Written without ``prometheus_client`` (one dependency less; the format is small), but in its
conventions: counters end in ``_total``, label values are escaped, each family has ``# HELP``
and ``# TYPE``. Every scrape reads the live objects of the switch (nothing is sampled in the
background), so ``GET /metrics`` costs a walk over the live calls and bindings.

Families (``mss_`` prefix):

- ``calls_active{state}``, ``calls_started_total``, ``calls_ended_total{outcome}`` (answered,
  busy, no answer, cancelled, failed), ``calls_refused_total{reason}`` (rejected, overload,
  media_down);
  calls per second by outcome is ``rate(mss_calls_ended_total[1m])``;
- ``registrations`` (bindings), ``registered_extensions``, ``registrar_requests_total{result}``;
- ``trunk_up{trunk,state}`` and ``trunk_calls_active{trunk,direction}`` (when trunks exist);
- ``sip_messages_total{kind}``, ``sip_parse_errors_total``, ``sip_transaction_timeouts_total``,
  ``sip_transaction_events_total{event}``;
- ``bans_active``;
- ``service_hook_failures_total{service}``, ``service_enabled{service}`` (Lua services);
- ``media_sessions`` (from the media gateway's ``list``), ``media_up`` (the switch's pings
  to the gateway, ``mss.media.health``; 0 also when ``list`` is not answered), when there is
  a gateway.
"""
from __future__ import annotations

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.web import resource, server

from mss.admin.operations import Operations, service_engine

log = Logger()

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def _escape(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class Exposition:
    """Collects families and renders the text format."""

    def __init__(self):
        self._families: dict[str, tuple[str, str, list]] = {}

    def add(self, name: str, kind: str, help_text: str, value, labels: dict | None = None):
        family = self._families.setdefault(name, (kind, help_text, []))
        family[2].append((labels or {}, value))

    def declare(self, name: str, kind: str, help_text: str):
        """A family with no sample yet (still listed, so dashboards see it exists)."""
        self._families.setdefault(name, (kind, help_text, []))

    def render(self) -> bytes:
        lines = []
        for name, (kind, help_text, samples) in self._families.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                if labels:
                    text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                    lines.append(f"{name}{{{text}}} {_number(value)}")
                else:
                    lines.append(f"{name} {_number(value)}")
        return ("\n".join(lines) + "\n").encode("utf-8")


OUTCOMES = ("answered", "busy", "no answer", "cancelled", "failed")


class CallOutcomes:
    """Counts ended calls by disposition (a ``CallManager`` listener)."""

    def __init__(self):
        self.counts = dict.fromkeys(OUTCOMES, 0)

    def __call__(self, call, event):
        if event == "ended":
            outcome = call.disposition if call.disposition in self.counts else "failed"
            self.counts[outcome] += 1


def collect(switch, outcomes: CallOutcomes, now: float, media: dict | None = None) -> Exposition:
    """Read the switch's live state into an ``Exposition`` (synchronous, no I/O)."""
    e = Exposition()
    manager = switch.calls
    by_state = {"setup": 0, "answered": 0}
    per_trunk: dict[tuple[str, str], int] = {}
    for call in list(manager.calls.values()):
        by_state[call.state] = by_state.get(call.state, 0) + 1
        trunk = getattr(call.trunk, "name", call.trunk)
        if trunk:
            key = (trunk, getattr(call, "trunk_direction", None) or call.direction)
            per_trunk[key] = per_trunk.get(key, 0) + 1
    for state, n in by_state.items():
        e.add("mss_calls_active", "gauge", "Live calls by state.", n, {"state": state})
    counters = manager.counters
    e.add("mss_calls_started_total", "counter", "Calls that were routed and rang.",
          counters.get("calls", 0))
    for outcome, n in outcomes.counts.items():
        e.add("mss_calls_ended_total", "counter", "Ended calls by outcome.", n,
              {"outcome": outcome})
    for reason in ("rejected", "overload", "media_down"):
        e.add("mss_calls_refused_total", "counter",
              "INVITEs refused before ringing (no route, busy rule, overload, no media gateway).",
              counters.get(reason, 0), {"reason": reason})
    e.add("mss_calls_accepting", "gauge", "1 while new calls are accepted (0 while draining).",
          bool(getattr(manager, "accepting", True)))

    bindings = switch.bindings
    aors = bindings.aors()
    e.add("mss_registrations", "gauge", "Registered contacts (bindings).",
          sum(len(bindings.get(a)) for a in aors))
    e.add("mss_registered_extensions", "gauge", "Extensions with at least one binding.",
          len(aors))
    for result, n in getattr(switch.registrar, "counters", {}).items():
        e.add("mss_registrar_requests_total", "counter", "REGISTER requests by result.", n,
              {"result": result})

    _trunks(e, switch, per_trunk)

    core = switch.core
    e.add("mss_sip_messages_total", "counter", "SIP messages received.",
          core.counters.get("requests", 0), {"kind": "request"})
    e.add("mss_sip_messages_total", "counter", "SIP messages received.",
          core.counters.get("responses", 0), {"kind": "response"})
    e.add("mss_sip_parse_errors_total", "counter", "Messages that did not parse.",
          core.counters.get("parse_errors", 0))
    e.add("mss_sip_transaction_timeouts_total", "counter",
          "Client transactions that timed out (timer B/F).", core.counters.get("timeouts", 0))
    for event, n in getattr(core.layer, "counters", {}).items():
        e.add("mss_sip_transaction_events_total", "counter", "Transaction layer events.", n,
              {"event": event})

    e.add("mss_bans_active", "gauge", "Source addresses banned now.", _active_bans(switch, now))

    engine = service_engine(switch)
    e.declare("mss_service_hook_failures_total", "counter", "Lua hook calls that failed.")
    if engine is not None:
        for status in engine.status() if hasattr(engine, "status") else ():
            name = status.get("name", "?")
            e.add("mss_service_hook_failures_total", "counter", "Lua hook calls that failed.",
                  status.get("faults", 0), {"service": name})
            e.add("mss_service_enabled", "gauge", "1 when the service runs, 0 when disabled.",
                  status.get("state") == "active", {"service": name})

    if media is not None:
        e.add("mss_media_up", "gauge", "1 when the media gateway is up (answers its pings).",
              media.get("up", False))
        if "sessions" in media:
            e.add("mss_media_sessions", "gauge", "Calls with media on the gateway.",
                  media["sessions"])
        for key, help_text in (("streams", "Media streams relayed."),
                               ("packets", "RTP packets relayed.")):
            if key in media:
                kind = "counter" if key == "packets" else "gauge"
                name = f"mss_media_{key}_total" if kind == "counter" else f"mss_media_{key}"
                e.add(name, kind, help_text, media[key])
    return e


def _active_bans(switch, now: float) -> int:
    bans = switch.bans
    if hasattr(bans, "active"):
        return len(bans.active(now))
    table = getattr(bans, "_bans", {})
    return sum(1 for ban in list(table.values()) if getattr(ban, "until", 0) > now)


def _trunks(e: Exposition, switch, per_trunk: dict) -> None:
    e.declare("mss_trunk_up", "gauge",
              "1 when the trunk is registered or needs no registration.")
    e.declare("mss_trunk_calls_active", "gauge", "Live calls per trunk and direction.")
    try:
        rows = Operations(switch).trunks()
    except Exception:
        log.failure("metrics: reading the trunks failed")
        rows = []
    counts = dict(per_trunk)
    for row in rows:
        name = row.get("name", "?")
        state = str(row.get("state", "unknown"))
        e.add("mss_trunk_up", "gauge",
              "1 when the trunk is registered or needs no registration.",
              state in ("registered", "no registration"), {"trunk": name, "state": state})
        for direction, n in (row.get("calls") or {}).items():
            counts[(name, direction)] = n          # the dispatcher's count when it has one
    for (trunk, direction), n in sorted(counts.items()):
        e.add("mss_trunk_calls_active", "gauge", "Live calls per trunk and direction.", n,
              {"trunk": trunk, "direction": direction})


class MetricsResource(resource.Resource):
    isLeaf = True
    log = Logger()

    def __init__(self, switch, outcomes: CallOutcomes, reactor, media_timeout: float = 1.0):
        super().__init__()
        self.switch = switch
        self.outcomes = outcomes
        self.reactor = reactor
        self.media_timeout = media_timeout

    def render_GET(self, request):
        if request.path not in (b"/metrics", b"/"):
            request.setResponseCode(404)
            return b"not found: try /metrics\n"
        d = self._media()
        d.addCallback(lambda media: collect(self.switch, self.outcomes, self.reactor.seconds(),
                                            media).render())

        def send(body):
            request.setHeader(b"content-type", CONTENT_TYPE)
            request.write(body)
            request.finish()

        def failed(failure):
            self.log.failure("metrics scrape failed", failure)
            request.setResponseCode(500)
            request.write(b"metrics collection failed\n")
            request.finish()
        d.addCallbacks(send, failed)
        return server.NOT_DONE_YET

    def _media(self) -> defer.Deferred:
        media = getattr(self.switch, "media", None)
        if media is None or not hasattr(media, "command"):
            return defer.succeed(None)
        health = getattr(self.switch, "media_health", None)
        if health is not None and not health.up:
            return defer.succeed({"up": False})      # the monitor knows: no scrape-time wait
        d = defer.maybeDeferred(media.command, {"command": "list", "limit": 1000000})
        d.addTimeout(self.media_timeout, self.reactor)

        def ok(reply):
            calls = reply.get("calls") if isinstance(reply, dict) else None
            out = {"up": True}
            if isinstance(calls, list):
                out["sessions"] = len(calls)
            return out
        d.addCallbacks(ok, lambda f: {"up": False})
        return d


class MetricsService(service.Service):
    """``GET http://[metrics] bind:port/metrics`` while the switch runs."""

    log = Logger()

    def __init__(self, switch, settings: dict, reactor):
        self.switch = switch
        self.reactor = reactor
        self.outcomes = CallOutcomes()
        self.resource = MetricsResource(switch, self.outcomes, reactor)
        site = server.Site(self.resource)
        site.displayTracebacks = False
        site.noisy = False
        self.site = site
        self.description = f"tcp:{settings['port']}:interface={settings['bind']}"
        self.listening: defer.Deferred | None = None
        self.port = None

    def startService(self):
        super().startService()
        self.switch.calls.listeners.append(self.outcomes)
        self.listening = endpoints.serverFromString(self.reactor, self.description).listen(
            self.site)

        def listening(port):
            self.port = port
            self.log.info("metrics on http://{host}:{port}/metrics", host=port.getHost().host,
                          port=port.getHost().port)
            return port

        def failed(failure):
            self.log.error("metrics endpoint {where} not available: {error}",
                           where=self.description, error=failure.getErrorMessage())
        self.listening.addCallbacks(listening, failed)

    def stopService(self):
        super().stopService()
        if self.outcomes in self.switch.calls.listeners:
            self.switch.calls.listeners.remove(self.outcomes)
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
