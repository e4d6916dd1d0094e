# -*- test-case-name: tests.media.test_config -*-
"""Settings of the stand-alone gateway (``twistd -n mss-media --config etc/mss-media.toml``).

The file has a ``[media]`` section with the same keys as ``[media]`` in ``etc/mss.toml``
(``control``, ``rtp_ports``, ``public_address``, ``media_timeout``, ``workers``; ``mode`` is
accepted and ignored, so one file can serve both) plus ``bind``, the address the RTP sockets bind
to (default: ``public_address``, which suits hosts that own their public address; set
``"0.0.0.0"`` behind 1:1 NAT). Checks and error messages are those of ``mss.config``
(``ConfigError`` naming file, key and problem). Other sections of ``etc/mss.toml`` are ignored,
so the switch can hand its own file to the gateway child it starts.
"""
from __future__ import annotations

from mss import config as mssconfig
from mss.config import ConfigError, Key

SCHEMA: dict[str, dict[str, Key]] = {"media": mssconfig.SCHEMA["media"]}


def _check(path: str, raw: dict) -> dict:
    for section, value in raw.items():
        if section not in mssconfig.SCHEMA:
            raise ConfigError(path, section, f"unknown section [{section}]")
        if not isinstance(value, dict):
            raise ConfigError(path, section, "must be a table ([section])")
    errors: list[ConfigError] = []
    media = mssconfig.check_section(path, "media", raw.get("media", {}), SCHEMA["media"], errors)
    if errors:
        raise errors[0]
    if not media["bind"]:
        media["bind"] = media["public_address"]
    return {"media": media}


def load(path: str) -> dict:
    """Read and validate ``path``; raise ``ConfigError`` on the first problem."""
    return _check(path, mssconfig._read(path))


def from_dict(raw: dict, path: str = "<test>") -> dict:
    return _check(path, raw)
