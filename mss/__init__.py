"""mss: a SIP softswitch (IP-PBX) built on Twisted."""
__version__ = "0.1.0"
