# -*- test-case-name: tests.call.test_media -*-
"""The seam between call control and media anchoring.

``GatewayMedia`` adapts an ng client (``mss.media.client.NgClient``: the built-in gateway or
a real rtpengine) to this seam: one media "call" per mss call (the A leg's Call-ID), the
caller's tag as from-tag and each B leg's tag as to-tag. Its Deferreds fire from UDP
answers, outside the SIP input path; what the call core then sends wakes the shell itself.

The call core asks for SDP to be rewritten on each offer/answer (rtpengine ``ng`` semantics:
``offer`` with the offerer's tag returns the SDP for the other side; ``answer`` with both tags
returns the SDP for the offerer) and ends media with ``delete``. Every result is a Deferred:
the built-in gateway and rtpengine answer over UDP. ``PassThroughMedia`` is ``[media] mode =
"off"``: the SDP goes through unchanged, synchronously.
"""
from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from mss.media.ng import MediaError


class IMediaAnchor(Interface):
    def offer(call_id, from_tag, sdp, leg_label):
        """Deferred[bytes]: the offer as the other side must see it."""

    def answer(call_id, from_tag, to_tag, sdp, leg_label):
        """Deferred[bytes]: the answer as the offerer must see it."""

    def delete(call_id):
        """Free every stream of the call (fire and forget)."""

    available = Attribute("False while the gateway is known to be down (calls get 503)")


@implementer(IMediaAnchor)
class GatewayMedia:
    """``IMediaAnchor`` over an ng client. ``ice="remove"`` strips ICE attributes (plain SIP
    phones), ``replace=("origin",)`` rewrites the o= line, and the leg label goes to the
    gateway as ``label`` (rtpengine shows it in ``query``)."""

    log = Logger()

    def __init__(self, client, *, ice: str | None = "remove",
                 replace=("origin",), health=None):
        self.client = client
        self.health = health            # mss.media.health.MediaHealth, when monitored
        self.extra: dict = {}
        if ice:
            self.extra["ICE"] = ice
        if replace:
            self.extra["replace"] = list(replace)

    @property
    def available(self) -> bool:
        """False while the monitor sees the gateway down: new calls get 503."""
        return self.health is None or self.health.up

    def _options(self, leg_label: str) -> dict:
        return dict(self.extra, label=leg_label) if leg_label else self.extra

    def _sdp(self, d, required: bool = True):
        """The SDP of the gateway's reply (None for a reply without SDP when not
        ``required``, e.g. moving an existing leg into a room). The result always fires: a
        reply without a needed SDP is an error, never a call stuck in setup."""
        out = defer.Deferred()

        def ok(reply):
            sdp = reply.get("sdp") if isinstance(reply, dict) else reply
            if sdp is None and required:
                out.errback(ValueError("the media gateway answered without SDP"))
            else:
                out.callback(sdp)

        def failed(failure):
            out.errback(failure)
        d.addCallbacks(ok, failed)
        return out

    def offer(self, call_id, from_tag, sdp, leg_label="", to_tag=None):
        return self._sdp(self.client.offer(call_id, from_tag, sdp, to_tag=to_tag,
                                           **self._options(leg_label)))

    def answer(self, call_id, from_tag, to_tag, sdp, leg_label=""):
        return self._sdp(self.client.answer(call_id, from_tag, to_tag, sdp,
                                            **self._options(leg_label)))

    def delete(self, call_id):
        """Fire and forget: an unknown call is no error (media may never have been set up)."""

        def failed(failure):
            if not failure.check(MediaError):
                self.log.warn("media delete for {call_id} failed: {error}", call_id=call_id,
                              error=failure.getErrorMessage())
        self.client.delete(call_id).addErrback(failed)
        return None

    def room_join(self, room, call_id, from_tag, sdp=None):
        return self._sdp(self.client.room_join(room, call_id, from_tag, sdp),
                         required=sdp is not None)

    def room_leave(self, call_id, from_tag):
        d = self.client.room_leave(call_id, from_tag)
        d.addErrback(lambda f: None)
        return d


@implementer(IMediaAnchor)
class PassThroughMedia:
    available = True

    def offer(self, call_id, from_tag, sdp, leg_label=""):
        return defer.succeed(sdp)

    def answer(self, call_id, from_tag, to_tag, sdp, leg_label=""):
        return defer.succeed(sdp)

    def delete(self, call_id):
        return None
