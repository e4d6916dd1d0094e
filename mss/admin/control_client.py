# -*- test-case-name: tests.admin.test_control -*-
"""The blocking client of the control socket (``mss.admin.control``), for ``mssctl``.

Standard library only, so that every ``mssctl`` command starts without loading Twisted's
networking.
"""
from __future__ import annotations

import json
import socket


class ControlError(Exception):
    """The control socket could not be reached or answered badly (message for people)."""


class ControlClient:
    """Blocking client: one request, one answer (for ``mssctl``)."""

    def __init__(self, path: str, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout

    def request(self, command: str, **args) -> dict:
        line = json.dumps({"command": command, **args}).encode() + b"\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.path)
                s.sendall(line)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) > 64 * 1024 * 1024:
                        raise ControlError("answer too long")
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"the switch is not running (no control socket at {self.path})")
        except PermissionError:
            raise ControlError(f"permission denied on {self.path} (run as the switch's user)")
        except socket.timeout:
            raise ControlError(f"the switch did not answer within {self.timeout:g} s")
        except OSError as e:
            raise ControlError(f"cannot talk to the switch at {self.path}: {e.strerror or e}")
        try:
            answer = json.loads(data)
        except ValueError:
            raise ControlError("the switch sent an answer that is not JSON")
        if not isinstance(answer, dict):
            raise ControlError("the switch sent an answer that is not a JSON object")
        return answer
