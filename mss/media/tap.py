# -*- test-case-name: tests.media.test_tap -*-
"""``twistd -n mss-media``: the media gateway alone (``--config etc/mss-media.toml``).

With ``[media] workers = 1`` one process does everything (``MediaGatewayService``). With more
workers (0: one per core) this process becomes the front: it owns the control port and starts
the workers as child processes, each with its own loopback control port (chosen by the worker,
port 0) and a slice of the RTP range (``mss.media.workers``). The ``--worker-*`` options are
how the front starts a worker; ``--supervised`` (``mss.media.supervision``) ties a gateway to
the process that started it. The control address is ``--control``, else ``[media] control``,
else 127.0.0.1:22222.
"""
from __future__ import annotations

import os

from twisted.application import service
from twisted.python import usage

from mss.config import ConfigError
from mss.media import config as mediaconfig
from mss.media.ports import parse_range
from mss.media.server import MediaGatewayService
from mss.media.supervision import REPORT_FD, ParentLink, Reporter, set_parent_death_signal
from mss.media.workers import FrontService

DEFAULT_CONTROL = "127.0.0.1:22222"     # a stand-alone gateway's control port by default


class Options(usage.Options):
    optParameters = [
        ["config", "c", "etc/mss-media.toml", "gateway settings (TOML, [media] section)"],
        ["control", None, None, "control address (host:port, port 0: any free port); "
                                "default: [media] control, else 127.0.0.1:22222"],
        ["worker-control", None, None, "(internal) run as a worker on this control address"],
        ["worker-ports", None, None, "(internal) the worker's RTP port range, low-high"],
    ]
    optFlags = [
        ["supervised", None, "(internal) started by a switch or a front process: stop when "
                             "stdin closes, report the control address on fd 3"],
    ]

    def postOptions(self) -> None:
        try:
            self.settings = mediaconfig.load(self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e))


def makeService(options):
    # the reactor twistd installed: importing it at module level would install the default
    from twisted.internet import reactor

    media = options.settings["media"]
    workers = media["workers"] or os.cpu_count() or 1
    control = options["worker-control"] or options["control"] or media["control"] \
        or DEFAULT_CONTROL
    top = service.MultiService()
    reporter = Reporter()
    if options["supervised"]:
        # die with the parent: the kernel's signal on Linux, and EOF on stdin everywhere
        set_parent_death_signal()
        ParentLink(reactor).setServiceParent(top)
        reporter = Reporter(REPORT_FD)
    if options["worker-control"] or workers == 1:
        MediaGatewayService(
            reactor, control=control,
            rtp_ports=parse_range(options["worker-ports"] or media["rtp_ports"]),
            public_address=media["public_address"], bind=media["bind"],
            media_timeout=media["media_timeout"], reporter=reporter).setServiceParent(top)
        return top
    FrontService(reactor, config_path=os.path.abspath(options["config"]), control=control,
                 rtp_ports=parse_range(media["rtp_ports"]), workers=workers, bind=media["bind"],
                 reporter=reporter).setServiceParent(top)
    return top
