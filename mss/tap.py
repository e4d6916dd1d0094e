# -*- test-case-name: tests.test_tap -*-
"""``twistd mss``: command-line options and the assembly of the running switch.

``makeService`` reads the configuration, builds the sans-I/O core and its transaction users,
and wraps them in Twisted services (transports, store polling, media gateway child, operations).
A configuration error is a ``UsageError`` so twistd prints one line and exits: no traceback.
"""
from __future__ import annotations

import gc
import os
import sys

from twisted.application import service
from twisted.application.internet import TimerService
from twisted.internet.error import CannotListenError
from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate, Logger,
                            globalLogPublisher, jsonFileLogObserver)
from twisted.python import usage

from mss import config as mss_config
from mss import logs
from mss.admin.service import OperationsService
from mss.call.manager import CallManager
from mss.call.media import GatewayMedia, PassThroughMedia
from mss.media.child import MediaChildService
from mss.media.client import NgClient
from mss.media.health import MediaMonitor
from mss.services.engine import ServiceEngine
from mss.registrar.abuse import BanList
from mss.registrar.auth import Authenticator, load_secret
from mss.registrar.bindings import BindingTable
from mss.registrar.directory import Directory
from mss.registrar.registrar import MULTI_DEVICE, Registrar
from mss.sip.core import OptionsResponder, SipCore
from mss.store.interface import StoreError
from mss.store.sqlite import SQLiteStore
from mss.transport.dns import NamesResolver
from mss.transport.shell import SipShell
from mss.trunk.dispatcher import TrunkDispatcher
from mss.trunk.resolver import ProxyResolver

log = Logger()


class Options(usage.Options):
    synopsis = "[--config FILE]"
    longdesc = ("Run the mss SIP softswitch. Settings come from the first of: "
                f"{mss_config.SEARCH_ORDER} (docs/configuration.md).")
    optParameters = [
        ["config", "c", None, "Configuration file (default: the first of "
                              f"${mss_config.ENVIRONMENT}, ./etc/mss.toml, "
                              f"{mss_config.SYSTEM_PATH})."],
    ]

    def postOptions(self):
        try:
            self["settings"] = mss_config.load(self["config"])
            check_store(self["settings"])
        except mss_config.ConfigError as e:
            raise usage.UsageError(str(e))


def check_store(settings) -> None:
    """Open (creating if needed) the store once before start-up, so that a store that cannot
    be opened is one line naming the configuration, the store file and the problem."""
    try:
        SQLiteStore(settings["store"]["path"]).close()
    except StoreError as e:
        raise mss_config.ConfigError(settings.path, "store.path", str(e))


_LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
           "error": LogLevel.error, "critical": LogLevel.critical}


def setup_logging(settings) -> None:
    """Apply ``[log] level`` to twistd's observers and add the JSON-lines file if asked."""
    predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[settings["log"]["level"]])
    logs.set_level(settings["log"]["level"])
    observers = getattr(globalLogPublisher, "_observers", None)
    if observers is not None:
        for i, observer in enumerate(list(observers)):
            if not isinstance(observer, FilteringLogObserver):
                globalLogPublisher.removeObserver(observer)
                globalLogPublisher.addObserver(FilteringLogObserver(observer, [predicate]))
    if settings["log"]["json_file"]:
        stream = open(settings["log"]["json_file"], "a", encoding="utf-8")
        globalLogPublisher.addObserver(
            FilteringLogObserver(jsonFileLogObserver(stream, recordSeparator=""), [predicate]))


class Switch(service.MultiService):
    """The running switch: holds the parts so operations tools can reach them."""

    def __init__(self, settings, reactor):
        super().__init__()
        self.settings = settings
        self.reactor = reactor
        sip = settings["sip"]
        self.core = SipCore(domain=sip["domain"], user_agent=sip["user_agent"],
                            max_size=sip["max_message_size"], max_headers=sip["max_headers"],
                            trace=sip["trace"], t1=sip["t1_ms"] / 1000, t2=sip["t2_ms"] / 1000,
                            t4=sip["t4_ms"] / 1000, transports=sip["transports"])
        self.shell = SipShell(self.core, reactor, bind=sip["bind"], port=sip["port"],
                              transports=sip["transports"], advertise=sip["advertise"],
                              tcp_idle_timeout=sip["tcp_idle_timeout"])
        self.options = OptionsResponder(self.core, reactor)
        self.core.register_user(self.options, ["OPTIONS"])

        # provisioning and registrations
        self.store = SQLiteStore(settings["store"]["path"])
        self.directory = Directory(self.store)
        sec = settings["security"]
        self.bans = BanList(threshold=sec["ban_threshold"], window=sec["ban_window"],
                            ban_time=sec["ban_time"], allow=sec["allow"])
        self.bans.load(self.store.list_bans(reactor.seconds()), reactor.seconds())
        auth = settings["auth"]
        self.auth = Authenticator(self.directory, self.bans, realm=auth["realm"],
                                  secret=load_secret(auth["secret_file"]),
                                  nonce_lifetime=auth["nonce_lifetime"],
                                  algorithms=auth["algorithms"], on_ban=self._persist_ban)
        reg = settings["registrar"]
        self.bindings = BindingTable(self.store, self.core.timers, self.core.at_end_of_turn,
                                     max_devices=reg["max_devices"])
        self.registrar = Registrar(self.core, reactor, self.auth, self.bindings, self.directory,
                                   min_expires=reg["min_expires"], max_expires=reg["max_expires"],
                                   default_expires=reg["default_expires"],
                                   scanner_agents=sec["drop_user_agents"], domain=sip["domain"])
        self.core.register_user(self.registrar, ["REGISTER"])

        self.trunks = TrunkDispatcher(self.core, reactor, self.store,
                                      resolver=ProxyResolver(NamesResolver(reactor), reactor))
        calls = settings["calls"]
        self.calls = CallManager(self.core, reactor, self.store, self.directory, self.bindings,
                                 self.auth, domain=sip["domain"],
                                 no_answer_timeout=calls["no_answer_timeout"],
                                 max_duration=calls["max_duration"], max_setup=calls["max_setup"],
                                 retry_after=calls["retry_after"],
                                 prefer_100rel=calls["prefer_100rel"],
                                 call_waiting=calls["call_waiting"],
                                 trunks=self.trunks)
        self.core.register_user(self.calls, ["INVITE", "ACK", "BYE", "CANCEL", "PRACK", "UPDATE",
                                             "INFO", "MESSAGE", "NOTIFY", "REFER"])
        self.core.set_dialog_user(self.calls)

        # Lua services: one sandboxed runtime per file of lua/services (or [services] path)
        self.service_engine = ServiceEngine.from_config(
            settings, self.store, in_call=lambda ext: ext in self.calls.in_call,
            seed=settings["services"]["seed"] or None)
        self.calls.set_engine(self.service_engine, settings["services"]["forward_limit"])
        self.directory.listeners.append(self._provisioning_changed)
        self.shell.setServiceParent(self)
        self._setup_media(settings["media"], reactor)
        self.poller = TimerService(settings["store"]["poll_interval"], self._poll)
        self.poller.setServiceParent(self)
        self.operations = OperationsService(self)      # control socket, manhole, metrics
        self.operations.setServiceParent(self)

    def _setup_media(self, media, reactor) -> None:
        """[media] mode: "child" starts the gateway, "remote" uses one, "off" passes SDP.
        A monitor pings the gateway; calls are refused with 503 while it is down."""
        self.media = None
        self.media_child = None
        self.media_health = None
        if media["mode"] == "off":
            self.calls.media = PassThroughMedia()
            return
        if media["mode"] == "child":
            # no address until the child reports the port it bound (127.0.0.1:0 by default)
            self.media = NgClient(reactor, None, on_notify=self._media_notify,
                                  interface="127.0.0.1")
        else:
            self.media = NgClient(reactor, media["control"], on_notify=self._media_notify)
        self.media.setServiceParent(self)
        self.media_monitor = MediaMonitor(reactor, self.media)
        self.media_health = self.media_monitor.health
        if media["mode"] == "child":
            # the gateway reads the [media] section of our own file and ignores the rest
            self.media_child = MediaChildService(
                reactor, self.settings.path, control=media["control"] or "127.0.0.1:0",
                on_ready=self.media_monitor.gateway_ready,
                on_failed=self.media_monitor.gateway_failed)
            self.media_child.setServiceParent(self)
        self.media_monitor.setServiceParent(self)
        self.calls.media = GatewayMedia(self.media, health=self.media_health)

    def _media_notify(self, message) -> None:
        """The gateway saw no RTP for [media] media_timeout seconds: end that call."""
        if message.get("notify") in ("media-timeout", b"media-timeout"):
            call_id = message.get("call-id")
            call_id = call_id.decode() if isinstance(call_id, bytes) else call_id
            call = self.calls.calls.get(call_id)
            if call is not None:
                log.info("call {call_id}: no RTP, ending it", call_id=call_id)
                call.hangup("media timeout")

    def _poll(self) -> None:
        """Once per poll interval: provisioning changes, and service reloads asked by mssctl."""
        self.directory.poll()
        try:
            self.service_engine.poll_store()
        except Exception:
            log.failure("service engine poll failed")

    def _persist_ban(self, ban) -> None:
        if ban is not None:
            self.store.put_ban(ban.address, ban.until, ban.reason)

    def _provisioning_changed(self) -> None:
        """Re-apply the multi-device rule (the permission may have been turned off)."""
        for aor in self.bindings.aors():
            ext = self.directory(aor)
            if ext is None:
                self.bindings.remove_all(aor)
            else:
                self.bindings.enforce(aor, ext.has(MULTI_DEVICE))
        # bans added or lifted with `mssctl bans` take effect here too
        now = self.reactor.seconds()
        self.bans.replace(self.store.list_bans(now), now)
        self.trunks.reload()

    def startService(self):
        setup_logging(self.settings)        # twistd's observers exist only from now on
        loaded = self.bindings.load(self.reactor.seconds())
        log.info("loaded {count} live registrations from the store", count=loaded)
        try:
            super().startService()
        except CannotListenError as e:
            # a user error like a config error: one line naming file, key and problem
            sys.stderr.write(f"{self.settings.path}: sip.port: cannot listen on "
                             f"{e.interface or '0.0.0.0'}:{e.port}: {e.socketError}\n")
            sys.stderr.flush()
            os._exit(1)
        self.trunks.reload()            # after the shell: registrations need our ports
        tune_gc()

    def stopService(self):
        """Graceful: refuse new calls, let calls end (grace period), BYE the rest, then stop
        the parts; the store closes last so every CDR and binding is written."""
        d = self.operations.drain()

        def stop_parts(_):
            self.trunks.stop()
            return service.MultiService.stopService(self)

        def close(result):
            self.store.close()
            return result
        return d.addBoth(stop_parts).addBoth(close)


def tune_gc() -> None:
    """Keep full garbage collections off the signalling path.

    Everything built at start-up (code, config, caches) is moved out of the collector's
    view (``gc.freeze``), and the young-generation threshold is raised: with defaults a call
    burst triggers gen-2 passes of 100-400 ms that free nothing yet delay 180/200 past T1
    (retransmissions, dropped calls). Reference counting still frees almost everything.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def makeService(options, reactor=None):
    if reactor is None:
        # the reactor twistd installed: importing it at module level would install the default
        from twisted.internet import reactor
    settings = options["settings"] if "settings" in options else mss_config.load(options.get("config"))
    log.info("mss starting with {path}", path=settings.path)
    return Switch(settings, reactor)
