# -*- test-case-name: tests.media.test_supervision -*-
"""The gateway side of being a child process: die with the parent, report readiness.

A supervised gateway (``twistd -n mss-media --supervised``, started by a switch for ``[media]
mode = "child"`` or by a front process for a worker) is tied to its parent two ways, so that
it never outlives it and keeps ports a restarted switch needs:

- its stdin is a pipe whose other end only the parent holds: when the parent dies, by any
  signal, ``kill -9`` included, the kernel closes that end and we read EOF (portable);
- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` also has the kernel kill us when the parent
  dies, even if this process is too busy to read its stdin.

It binds its control port where it is told (usually port 0, so that any number of switches
can run on one host) and reports on file descriptor 3, one line: ``ready HOST:PORT`` once it
listens, or ``error REASON`` when it cannot start (then it exits 1, with no traceback).
Unsupervised (stand-alone) the error is one line on stderr instead.
"""
from __future__ import annotations

import os
import signal
import sys

from twisted.application import service
from twisted.internet import fdesc
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

REPORT_FD = 3
PR_SET_PDEATHSIG = 1
EXIT_DEADLINE = 1.0


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the Linux kernel to send ``sig`` when our parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class Reporter:
    """Where a gateway says it is ready or why it cannot start (stand-alone: stderr)."""

    def __init__(self, fd: int | None = None, exit=os._exit):
        self.fd = fd
        self._exit = exit

    def ready(self, address: str) -> None:
        if self.fd is not None:
            self._write(f"ready {address}\n")

    def failed(self, reason: str) -> None:
        """One line naming the cause, then exit 1 (a gateway that cannot start is useless)."""
        line = " ".join(reason.split())
        if self.fd is not None:
            self._write(f"error {line}\n")
        else:
            sys.stderr.write(f"mss-media: {line}\n")
            sys.stderr.flush()
        self._exit(1)

    def _write(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode("utf-8", "replace"))
        except OSError:
            pass                        # the parent is gone: the stdin watch ends us


@implementer(IReadDescriptor)
class ParentLink(service.Service):
    """Stops this process when its stdin (the parent's pipe) reaches EOF."""
    log = Logger()

    def __init__(self, reactor, fd: int = 0, exit=os._exit, deadline: float = EXIT_DEADLINE):
        self.reactor = reactor
        self.fd = fd
        self._exit = exit
        self.deadline = deadline
        self.gone = False

    def startService(self):
        super().startService()
        fdesc.setNonBlocking(self.fd)
        self.reactor.addReader(self)

    def stopService(self):
        super().stopService()
        if not self.gone:
            self.reactor.removeReader(self)

    # IReadDescriptor
    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "parent"

    def doRead(self):
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self.parent_gone()
        return None

    def connectionLost(self, reason) -> None:
        self.parent_gone()

    def parent_gone(self) -> None:
        """Stop cleanly (workers get SIGTERM), but exit within ``deadline`` whatever happens."""
        if self.gone:
            return
        self.gone = True
        self.reactor.removeReader(self)
        self.log.warn("parent process is gone: media gateway stopping")
        self.reactor.callLater(self.deadline, self._exit, 0)
        if self.reactor.running:
            self.reactor.stop()
