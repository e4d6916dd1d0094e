# -*- test-case-name: tests.admin.test_operations -*-
"""The Twisted side of operations: ``OperationsService(switch)``, added last to the switch so
it starts after everything it looks at.

- the control socket (always; ``[admin] control_socket``, default ``mss.ctl`` beside the
  store), the manhole (``[manhole] enabled``) and the metrics endpoint (``[metrics] enabled``),
  all serving one ``mss.admin.operations.Operations``;
- SIGHUP reloads the services (the previous handler is put back on stop);
- ``drain()`` is the graceful shutdown: stop accepting new calls, wait up to ``[shutdown]
  grace_period`` seconds for calls to end, then end the rest with BYE and give the BYE
  transactions a moment to complete. CDRs and bindings are written synchronously by the call
  core and the registrar, so once the calls have ended everything is on disk.
"""
from __future__ import annotations

import signal

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from mss.admin.control import ControlService
from mss.admin.metrics import MetricsService
from mss.admin.operations import OperationError, Operations, control_socket_path


class OperationsService(service.MultiService):
    """Control socket, manhole, metrics, SIGHUP reload and graceful drain for one switch."""

    log = Logger()

    def __init__(self, switch, reactor=None, install_signals: bool = True):
        super().__init__()
        if reactor is None:
            reactor = switch.reactor
        self.switch = switch
        self.reactor = reactor
        self.operations = Operations(switch)
        self.install_signals = install_signals
        self.grace_period = switch.settings["shutdown"]["grace_period"]
        self._previous_hup = None
        self._drain: defer.Deferred | None = None
        self._drained = False
        self._timer = None
        self._waiters: list[defer.Deferred] = []
        self.metrics = None
        self.manhole = None

        self.control = ControlService(self.operations, control_socket_path(switch.settings),
                                      reactor)
        self.control.setServiceParent(self)
        if switch.settings["metrics"]["enabled"]:
            self.metrics = MetricsService(switch, switch.settings["metrics"], reactor)
            self.metrics.setServiceParent(self)
        if switch.settings["manhole"]["enabled"]:
            # twisted.conch (and cryptography) is slow to import: only when the manhole is on
            from mss.admin.manhole import ManholeService, namespace
            self.manhole = ManholeService(namespace(switch, self.operations),
                                          switch.settings["manhole"], reactor)
            self.manhole.setServiceParent(self)

    # -- start/stop ----------------------------------------------------------------------------
    def startService(self):
        super().startService()
        if self.install_signals and hasattr(signal, "SIGHUP"):
            try:
                self._previous_hup = signal.signal(signal.SIGHUP, self._sighup)
            except ValueError:          # not the main thread (embedded): no signal handling
                self._previous_hup = None

    def stopService(self):
        if self._previous_hup is not None:
            try:
                signal.signal(signal.SIGHUP, self._previous_hup)
            except ValueError:
                pass
            self._previous_hup = None
        d = self.drain()
        d.addBoth(lambda _: service.MultiService.stopService(self))
        return d

    def _sighup(self, signum, frame):
        # a signal handler may run between any two bytecodes: do the work on the reactor's turn
        self.reactor.callFromThread(self._reload_on_signal)

    def _reload_on_signal(self):
        try:
            report = self.operations.reload_services()
        except OperationError as e:
            self.log.warn("SIGHUP: {why}", why=str(e))
            return
        except Exception:
            self.log.failure("SIGHUP: reloading the services failed")
            return
        self.log.info("SIGHUP: services reloaded ({report})", report=report)

    # -- graceful shutdown ---------------------------------------------------------------------
    def drain(self) -> defer.Deferred:
        """Stop taking calls; let live calls end within the grace period, then BYE the rest.

        Fires once every call has ended (so every CDR is written). Safe to call twice: the
        second caller waits for the same end.
        """
        if self._drained:
            return defer.succeed(None)
        d = defer.Deferred()
        if self._drain is not None:
            self._waiters.append(d)
            return d
        self._drain = d
        manager = self.switch.calls
        manager.accepting = False
        live = len(manager.calls)
        if not live:
            self.log.info("shutting down: no live calls")
            self._finish()
            return d
        self.log.info("shutting down: {count} live calls, waiting up to {grace} s for them to end",
                      count=live, grace=self.grace_period)
        manager.listeners.append(self._call_event)
        self._timer = self.reactor.callLater(self.grace_period, self._grace_over)
        return d

    def _call_event(self, call, event):
        if event == "ended" and not self.switch.calls.calls and self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
            self.reactor.callLater(0, self._linger)

    def _grace_over(self):
        self._timer = None
        manager = self.switch.calls
        calls = list(manager.calls.values())
        self.log.info("grace period over: ending {count} calls", count=len(calls))
        for call in calls:
            try:
                call.hangup("shutdown")
            except Exception:
                self.log.failure("ending call {call_id} at shutdown failed", call_id=call.id)
        self._linger()

    def _linger(self, deadline: float | None = None):
        """Give BYE transactions (and their retransmissions) up to 8 T1 to be answered."""
        now = self.reactor.seconds()
        if deadline is None:
            deadline = now + 8 * self.switch.core.t1
        if self.switch.core.layer.unanswered("BYE") and now < deadline:
            step = min(self.switch.core.t1 / 4, deadline - now)
            self.reactor.callLater(step, self._linger, deadline)
            return
        self._finish()

    def _finish(self):
        manager = self.switch.calls
        if self._call_event in manager.listeners:
            manager.listeners.remove(self._call_event)
        self.log.info("all calls ended")
        self._drained = True
        d, waiters, self._waiters = self._drain, self._waiters, []
        d.callback(None)
        for w in waiters:
            w.callback(None)
