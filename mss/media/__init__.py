"""The media gateway: RTP relay, G.711 mixer and tones, controlled by an rtpengine-compatible protocol.

Modules, by role:

- ``bencode``, ``ng``: the control protocol's wire format and cookie (retransmission) cache;
- ``relay``: command logic (calls, legs, SDP rewriting, rooms, media timeout) on an injected
  clock and socket factory; ``stream``: one endpoint's per-packet path (latching, counters);
  ``mixer``: mix-minus rooms; ``tones``: built-in call-progress tones as precomputed G.711
  frames and their player; ``ports``: RTP/RTCP port pairs;
- ``server``: the Twisted shell (RTP sockets on one epoll, the control port);
  ``workers``: the front process routing to one worker process per core;
- ``client``: call control's side (``IMediaGateway``, ``NgClient``);
  ``child``: run the gateway as a child process of the switch;
- ``config``, ``tap``: ``twistd -n mss-media --config etc/mss-media.toml``.

The protocol is documented in docs/media-protocol.md.
"""
