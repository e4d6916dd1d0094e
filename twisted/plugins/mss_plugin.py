"""twistd plugins: ``twistd -n mss`` (the switch) and ``twistd -n mss-media`` (media gateway).

Kept cheap: the real code is imported lazily by ServiceMaker.
"""
from twisted.application.service import ServiceMaker

mss = ServiceMaker("mss", "mss.tap", "mss SIP softswitch (IP-PBX)", "mss")
mss_media = ServiceMaker("mss-media", "mss.media.tap", "mss media gateway (RTP relay, G.711 mixer)", "mss-media")
