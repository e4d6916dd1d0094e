# -*- test-case-name: tests.admin.test_control -*-
"""The control socket: a UNIX socket on which ``mssctl`` asks the running switch to act.

One JSON object per line each way. Requests::

    {"command": "calls"}                                    live calls
    {"command": "registrations"}                            live bindings
    {"command": "status"}                                   counts, trace state, accepting,
                                                            media gateway up/down
    {"command": "hangup", "call_id": "..."}                 end a call with BYE
    {"command": "trace", "on": true, "extension": "1001"}   SIP trace (or "trunk": NAME,
                                                            or neither: everything)
    {"command": "services-reload"}                          reload the Lua services

Answers are ``{"ok": true, ...}`` or ``{"ok": false, "error": "why"}``. A bad line (not
JSON, unknown command, missing argument) gets an error answer and the connection stays
usable. The socket is created owner-only (mode 0600): whoever can open it can hang up calls.
``mss.admin.control_client`` is the blocking client ``mssctl`` uses.
"""
from __future__ import annotations

import json

from twisted.application import service
from twisted.internet import endpoints
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from mss.admin.operations import OperationError

MAX_LINE = 64 * 1024


class ControlProtocol(LineOnlyReceiver):
    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    log = Logger()

    def __init__(self, operations):
        self.operations = operations

    def lineReceived(self, line: bytes):
        answer = handle(self.operations, line)
        self.sendLine(json.dumps(answer, default=str).encode())

    def lineLengthExceeded(self, line):
        self.sendLine(json.dumps({"ok": False, "error": "request too long"}).encode())
        self.transport.loseConnection()


def _text(request: dict, key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value.strip():
        raise OperationError(f"{key} must be a non-empty string")
    return value.strip()


def handle(operations, line: bytes) -> dict:
    """Answer one request line (never raises)."""
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        return {"ok": False, "error": f"not a JSON request: {e}"}
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        return {"ok": False, "error": "a request is a JSON object with a \"command\""}
    command = request["command"]
    try:
        if command == "calls":
            return {"ok": True, "calls": operations.calls()}
        if command == "registrations":
            return {"ok": True, "registrations": operations.registrations()}
        if command == "status":
            return {"ok": True, **operations.summary(), "media": operations.media()}
        if command == "trunks":
            return {"ok": True, "trunks": operations.trunks()}
        if command == "hangup":
            return {"ok": True, **operations.hangup(_text(request, "call_id"))}
        if command == "trace":
            on = request.get("on")
            if not isinstance(on, bool):
                raise OperationError("on must be true or false")
            ext = _text(request, "extension") if request.get("extension") is not None else None
            trunk = _text(request, "trunk") if request.get("trunk") is not None else None
            return {"ok": True, "trace": operations.trace(on, extension=ext, trunk=trunk)}
        if command == "services-reload":
            return {"ok": True, "report": operations.reload_services()}
    except OperationError as e:
        return {"ok": False, "error": str(e)}
    except Exception as e:
        ControlProtocol.log.failure("control command {command} failed", command=command)
        return {"ok": False, "error": f"internal error: {type(e).__name__}: {e}"}
    return {"ok": False, "error": f"unknown command {command[:40]!r}"}


class ControlService(service.Service):
    """Listens on the control socket while the switch runs."""

    log = Logger()

    def __init__(self, operations, path: str, reactor):
        self.operations = operations
        self.path = path
        self.reactor = reactor
        self.port = None

    def startService(self):
        super().startService()
        factory = Factory.forProtocol(lambda: ControlProtocol(self.operations))
        # wantPID: a lock file tells a stale socket (crashed switch) from a live one
        endpoint = endpoints.UNIXServerEndpoint(self.reactor, self.path, mode=0o600, wantPID=True)
        d = endpoint.listen(factory)

        def listening(port):
            self.port = port
            self.log.info("control socket on {path}", path=self.path)

        def failed(failure):
            self.log.error("control socket {path} not available: {error}", path=self.path,
                           error=failure.getErrorMessage())
        d.addCallbacks(listening, failed)

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
