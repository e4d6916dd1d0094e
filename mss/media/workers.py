# -*- test-case-name: tests.media.test_workers -*-
"""Several gateway worker processes behind one control port (``[media] workers`` > 1).

Theory of operation. The front process owns the public control port and no RTP. It starts N
workers (``twistd -n mss-media --worker-control 127.0.0.1:0 --worker-ports <slice> --supervised``)
as child processes, restarted when they die; each worker is an ordinary single-process gateway
with its own loopback control port (a free one it reports back: nothing assumes the ports
next to the front's are free) and a disjoint slice of the RTP port range, so each worker
uses one core and capacity grows with cores. The ``Router`` sends every command about a call to
the worker chosen by ``crc32(call-id) % N`` (the same worker for the call's whole life).

Rooms must hear all their legs, but the legs of a conference or barge-in usually belong to
different calls and so to different workers. Each room lives on one worker (``crc32("room:" +
name) % N``). A leg on another worker joins through a *bridge*: the room's worker adds a
participant with its own port pair that exchanges RTP with the leg's socket on the leg's worker
(``room-join`` with ``address``); the leg's worker then forwards the phone's packets to that port
and the mixed audio coming back from it to the phone (``bridge``). The phone keeps talking to the
same port; the bridge costs one extra loopback hop for bridged legs only. A leg created by
``room-join`` with ``sdp`` (an operator or conference caller that only talks to the room) is
placed on the room's worker directly.

Limits: a worker that dies loses its calls (it is restarted empty; call control sees errors or
a media timeout); the router's bridge and pinning tables live in the front process only.
"""
from __future__ import annotations

import zlib

from twisted.application import service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from mss.media import ng
from mss.media.child import ChildProcessService, twistd_argv
from mss.media.client import NgClient
from mss.media.ng import MediaError, MediaTimeout
from mss.media.ports import PortAllocator
from mss.media.server import ControlProtocol, split_address
from mss.media.supervision import Reporter

BRIDGE_PREFIX = "bridge/"


def _index(key: str, n: int) -> int:
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) % n


class Router:
    """Routes ng commands to workers. ``workers[i].command(message)`` returns a Deferred firing
    with the reply dict or failing with MediaError/MediaTimeout; ``bridge_host`` is the address
    workers reach each other's RTP sockets on."""
    log = Logger()

    def __init__(self, workers: list, bridge_host: str = "127.0.0.1", notify=None):
        self.workers = workers
        self.bridge_host = bridge_host
        self.notify = notify                 # notify(controller, message) towards call control
        self.controllers: dict[str, object] = {}
        self.pinned: dict[str, int] = {}
        self.bridges: dict[tuple[str, str], tuple[int, str]] = {}

    def worker_of(self, call_id: str) -> int:
        pinned = self.pinned.get(call_id)
        return pinned if pinned is not None else _index(call_id, len(self.workers))

    def room_worker(self, room: str) -> int:
        return _index("room:" + room, len(self.workers))

    def handle(self, msg: dict, source) -> defer.Deferred | dict:
        command = msg.get("command")
        if command == "ping":
            return {"result": "pong"}
        if command in ("list", "room-list"):
            return self._gather(msg)
        if command == "room-query":
            room = msg.get("room")
            if not isinstance(room, str) or not room:
                return ng.error("missing room")
            return self._send(self.room_worker(room), msg).addCallback(self._unbridged_names)
        call_id = msg.get("call-id")
        if not isinstance(call_id, str) or not call_id:
            if command in ("offer", "answer", "delete", "query", "room-join", "room-leave"):
                return ng.error("missing call-id")
            return ng.error(f"unknown command {command!r}")
        if source is not None:
            self.controllers[call_id] = source
        if command == "room-join":
            return self._join(msg)
        if command == "room-leave":
            return self._leave(msg)
        d = self._send(self.worker_of(call_id), msg)
        if command == "delete":
            d.addCallback(self._deleted, call_id)
        return d

    def _send(self, index: int, msg: dict) -> defer.Deferred:
        def failed(failure):
            if failure.check(MediaError):
                return ng.error(failure.value.reason)
            if failure.check(MediaTimeout):
                return ng.error(f"media worker {index} did not answer")
            return failure
        return defer.maybeDeferred(self.workers[index].command, msg).addErrback(failed)

    @defer.inlineCallbacks
    def _gather(self, msg):
        replies = yield defer.gatherResults([self._send(i, msg) for i in range(len(self.workers))])
        if msg["command"] == "room-list":
            rooms = set()
            for r in replies:
                rooms.update(r.get("rooms", []))
            return {"result": "ok", "rooms": sorted(rooms)}
        calls = [c for r in replies for c in r.get("calls", []) if not c.startswith(BRIDGE_PREFIX)]
        limit = msg.get("limit", 32)
        return {"result": "ok", "calls": calls[:limit if isinstance(limit, int) else 32]}

    def _unbridged_names(self, reply: dict) -> dict:
        for p in reply.get("participants", []):
            if p.get("call-id", "").startswith(BRIDGE_PREFIX):
                p["call-id"] = p["call-id"][len(BRIDGE_PREFIX):].rsplit("/", 1)[0]
        return reply

    @defer.inlineCallbacks
    def _join(self, msg):
        call_id, tag, room = msg["call-id"], msg.get("from-tag"), msg.get("room")
        if not isinstance(room, str) or not room or not isinstance(tag, str) or not tag:
            return ng.error("missing room" if not room else "missing from-tag")
        r = self.room_worker(room)
        if "sdp" in msg and call_id not in self.pinned:
            # a leg that only talks to the room: create it where the room is, unless the call
            # already lives elsewhere (then the join is an error there, as on one worker)
            probe = yield self._send(self.worker_of(call_id), {"command": "query", "call-id": call_id})
            if probe.get("result") == "error":
                self.pinned[call_id] = r
        w = self.worker_of(call_id)
        if (call_id, tag) in self.bridges:
            yield self._unbridge(call_id, tag)
        if w == r:
            return (yield self._send(w, msg))
        q = yield self._send(w, {"command": "query", "call-id": call_id})
        if q.get("result") != "ok":
            return q
        medias = q.get("tags", {}).get(tag, {}).get("medias", [])
        if not medias:
            return ng.error("Unknown call-id or from-tag")
        stream = medias[0]["streams"][0]
        codec = msg.get("codec")
        if codec not in ("PCMU", "PCMA"):
            pts = [stream.get("last payload type")] + list(stream.get("payload types", []))
            pt = next((p for p in pts if p in (0, 8)), None)
            if pt is None:
                return ng.error("leg has no G.711 codec (PCMU or PCMA) to mix")
            codec = "PCMU" if pt == 0 else "PCMA"
        pseudo = f"{BRIDGE_PREFIX}{call_id}/{tag}"
        joined = yield self._send(r, {
            "command": "room-join", "room": room, "call-id": pseudo, "from-tag": tag,
            "address": f"{self.bridge_host}:{stream['local port']}", "codec": codec})
        if joined.get("result") != "ok":
            return joined
        bridged = yield self._send(w, {"command": "bridge", "call-id": call_id, "from-tag": tag,
                                       "address": f"{self.bridge_host}:{joined['port']}"})
        if bridged.get("result") != "ok":
            yield self._send(r, {"command": "delete", "call-id": pseudo})
            return bridged
        self.bridges[(call_id, tag)] = (r, pseudo)
        return {"result": "ok", "room": room}

    @defer.inlineCallbacks
    def _unbridge(self, call_id, tag):
        r, pseudo = self.bridges.pop((call_id, tag))
        yield self._send(self.worker_of(call_id), {"command": "bridge", "call-id": call_id,
                                                   "from-tag": tag})
        yield self._send(r, {"command": "delete", "call-id": pseudo})

    @defer.inlineCallbacks
    def _leave(self, msg):
        call_id, tag = msg["call-id"], msg.get("from-tag")
        if (call_id, tag) in self.bridges:
            yield self._unbridge(call_id, tag)
            return {"result": "ok"}
        return (yield self._send(self.worker_of(call_id), msg))

    @defer.inlineCallbacks
    def _deleted(self, reply, call_id):
        for key in [k for k in self.bridges if k[0] == call_id]:
            r, pseudo = self.bridges.pop(key)
            yield self._send(r, {"command": "delete", "call-id": pseudo})
        self.pinned.pop(call_id, None)
        self.controllers.pop(call_id, None)
        return reply

    def notified(self, message: dict) -> None:
        """A worker's notification: pass it on to the call's controller."""
        call_id = message.get("call-id")
        if not isinstance(call_id, str) or call_id.startswith(BRIDGE_PREFIX):
            return
        controller = self.controllers.get(call_id)
        if controller is not None and self.notify is not None:
            self.notify(controller, message)


class FrontService(service.MultiService):
    """The front process: control port, router, and the worker child processes.

    Each worker binds a free loopback control port and reports it (supervised children,
    ``mss.media.child``); the front reports itself ready once every worker has, and answers
    ``ping`` with an error while a worker is not running, so the switch sees a gateway that
    cannot relay as down."""
    log = Logger()

    def __init__(self, reactor, *, config_path: str, control: str, rtp_ports: tuple[int, int],
                 workers: int, bind: str = "127.0.0.1", python: str | None = None,
                 reporter=None):
        super().__init__()
        self.reactor = reactor
        self.control = split_address(control)
        self.reporter = reporter if reporter is not None else Reporter()
        host = bind if bind not in ("0.0.0.0", "::", "") else "127.0.0.1"
        slices = PortAllocator(*rtp_ports).split(workers)
        self.clients = []
        for i, (low, high) in enumerate(slices):
            client = NgClient(reactor, None, timeout=2.0, first_retransmit=0.2,
                              interface="127.0.0.1")
            ChildProcessService(
                reactor, twistd_argv("mss-media", "--config", config_path, "--worker-control",
                                     "127.0.0.1:0", "--worker-ports", f"{low}-{high}",
                                     "--supervised", python=python),
                f"mss-media-worker{i}", supervised=True,
                on_ready=lambda address, i=i: self._worker_ready(i, address),
                on_failed=lambda reason, i=i: self._worker_failed(i, reason),
            ).setServiceParent(self)
            client.setServiceParent(self)
            self.clients.append(client)
        self.router = Router(self.clients, bridge_host=host)
        for client in self.clients:
            client.on_notify = self.router.notified
        self.protocol = ControlProtocol(self._handle, reactor)
        self.router.notify = self.protocol.notify
        self.port = None
        self._reported = False

    def _handle(self, msg: dict, source):
        if msg.get("command") == "ping":
            missing = [i for i, c in enumerate(self.clients) if c.address is None]
            if missing:
                return ng.error(f"media worker {missing[0]} is not running")
        return self.router.handle(msg, source)

    def _worker_ready(self, index: int, address) -> None:
        self.clients[index].address = address
        self.log.info("media worker {index} ready on {host}:{port}", index=index,
                      host=address[0], port=address[1])
        self._report_ready()

    def _worker_failed(self, index: int, reason: str) -> None:
        self.clients[index].address = None
        self.log.warn("media worker {index} down: {reason}", index=index, reason=reason)

    def _report_ready(self) -> None:
        if self._reported or self.port is None:
            return
        if all(c.address is not None for c in self.clients):
            self._reported = True
            self.reporter.ready(f"{self.control[0]}:{self.port.getHost().port}")

    def startService(self):
        host, port = self.control
        try:
            self.port = self.reactor.listenUDP(port, self.protocol, interface=host)
        except CannotListenError as e:
            self.reporter.failed(f"cannot listen on control {host}:{port}: {e.socketError}")
            return
        super().startService()
        self.log.info("media gateway front: control {host}:{port}, {n} workers",
                      host=host, port=self.port.getHost().port, n=len(self.clients))
        self._report_ready()

    def stopService(self):
        d = super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return defer.gatherResults([d, defer.maybeDeferred(port.stopListening)])
        return d
