"""The thin Twisted shell: SIP over UDP and TCP, bytes and timers only (docs/architecture.md)."""
