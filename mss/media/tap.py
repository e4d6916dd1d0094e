"""``twistd -n mss-media``: the media gateway alone (``--config etc/mss-media.toml``).

With ``[media] workers = 1`` one process does everything (``MediaGatewayService``). With more
workers (0: one per core) this process becomes the front: it owns the control port and starts
the workers as child processes, each with its own loopback control port and a slice of the RTP
range (``mss.media.workers``). The ``--worker-*`` options are how the front starts a worker.
"""
# -*- test-case-name: tests.media.test_tap -*-
from __future__ import annotations

import os

from twisted.application import service
from twisted.internet import task
from twisted.logger import Logger
from twisted.python import usage

from mss.config import ConfigError
from mss.media import config as mediaconfig


class OrphanWatch(service.Service):
    """A worker stops when its front process is gone (it was re-parented)."""
    log = Logger()

    def __init__(self, reactor, interval: float = 1.0):
        self.reactor = reactor
        self.parent_pid = os.getppid()
        self.loop = task.LoopingCall(self.check)
        self.loop.clock = reactor
        self.interval = interval

    def startService(self):
        super().startService()
        self.loop.start(self.interval, now=False)

    def stopService(self):
        super().stopService()
        if self.loop.running:
            self.loop.stop()

    def check(self):
        if os.getppid() != self.parent_pid:
            self.log.warn("front process {pid} is gone: worker stopping", pid=self.parent_pid)
            self.loop.stop()
            self.reactor.stop()


class Options(usage.Options):
    optParameters = [
        ["config", "c", "etc/mss-media.toml", "gateway settings (TOML, [media] section)"],
        ["worker-control", None, None, "(internal) run as a worker on this control address"],
        ["worker-ports", None, None, "(internal) the worker's RTP port range, low-high"],
    ]

    def postOptions(self) -> None:
        try:
            self.settings = mediaconfig.load(self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e))


def makeService(options):
    from twisted.internet import reactor
    from mss.media.ports import parse_range
    from mss.media.server import MediaGatewayService

    media = options.settings["media"]
    workers = media["workers"] or os.cpu_count() or 1
    if options["worker-control"] or workers == 1:
        gateway = MediaGatewayService(
            reactor, control=options["worker-control"] or media["control"],
            rtp_ports=parse_range(options["worker-ports"] or media["rtp_ports"]),
            public_address=media["public_address"], bind=media["bind"],
            media_timeout=media["media_timeout"])
        if not options["worker-control"]:
            return gateway
        top = service.MultiService()
        gateway.setServiceParent(top)
        OrphanWatch(reactor).setServiceParent(top)
        return top
    from mss.media.workers import FrontService
    return FrontService(reactor, config_path=os.path.abspath(options["config"]),
                        control=media["control"], rtp_ports=parse_range(media["rtp_ports"]),
                        workers=workers, bind=media["bind"])
