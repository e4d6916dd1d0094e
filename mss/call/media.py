"""The seam between call control and media anchoring.

The call core asks for SDP to be rewritten on each offer/answer (rtpengine ``ng`` semantics:
``offer`` with the offerer's tag returns the SDP for the other side; ``answer`` with both tags
returns the SDP for the offerer) and ends media with ``delete``. Every result is a Deferred:
the built-in gateway and rtpengine answer over UDP. ``PassThroughMedia`` is ``[media] mode =
"off"``: the SDP goes through unchanged, synchronously.
"""
# -*- test-case-name: tests.call.test_call -*-
from __future__ import annotations

from twisted.internet import defer
from zope.interface import Interface, implementer


class IMediaAnchor(Interface):
    def offer(call_id, from_tag, sdp, leg_label):
        """Deferred[bytes]: the offer as the other side must see it."""

    def answer(call_id, from_tag, to_tag, sdp, leg_label):
        """Deferred[bytes]: the answer as the offerer must see it."""

    def delete(call_id):
        """Free every stream of the call (fire and forget)."""


@implementer(IMediaAnchor)
class PassThroughMedia:
    def offer(self, call_id, from_tag, sdp, leg_label=""):
        return defer.succeed(sdp)

    def answer(self, call_id, from_tag, to_tag, sdp, leg_label=""):
        return defer.succeed(sdp)

    def delete(self, call_id):
        return None
