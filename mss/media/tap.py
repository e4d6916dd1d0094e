"""``twistd -n mss-media``: the media gateway alone (``--config etc/mss-media.toml``).

With ``[media] workers = 1`` one process does everything (``MediaGatewayService``). With more
workers (0: one per core) this process becomes the front: it owns the control port and starts
the workers as child processes, each with its own loopback control port and a slice of the RTP
range (``mss.media.workers``). The ``--worker-*`` options are how the front starts a worker.
"""
# -*- test-case-name: tests.media.test_tap -*-
from __future__ import annotations

import os

from twisted.python import usage

from mss.config import ConfigError
from mss.media import config as mediaconfig


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
        return MediaGatewayService(
            reactor, control=options["worker-control"] or media["control"],
            rtp_ports=parse_range(options["worker-ports"] or media["rtp_ports"]),
            public_address=media["public_address"], bind=media["bind"],
            media_timeout=media["media_timeout"])
    from mss.media.workers import FrontService
    return FrontService(reactor, config_path=os.path.abspath(options["config"]),
                        control=media["control"], rtp_ports=parse_range(media["rtp_ports"]),
                        workers=workers, bind=media["bind"])
