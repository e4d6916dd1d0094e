# -*- test-case-name: tests.test_config -*-
"""Server settings from ``etc/mss.toml``: schema, defaults and validation.

The file holds server settings only (provisioning lives in the store). Every key is declared
in ``SCHEMA`` with its type, default and check, so that an unknown key, a wrong type or a value
out of range stops start-up with one line that names the file, the key and the problem
(``ConfigError``). ``load(path)`` returns a ``Config``: ``config["sip"]["port"]``.
``problems(path)`` returns every problem at once (``mssctl check-config``).

The switch and ``mssctl`` find the file the same way (``locate``): ``--config``, then
``$MSS_CONFIG``, ``./etc/mss.toml``, ``/etc/mss/mss.toml``. The packaged example is never used
on its own: its relative paths would put the store inside the installed package, where a
reinstall deletes it and where ``mssctl`` run elsewhere would find another one. For the same
reason no file mss writes may resolve inside the installed package.
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from importlib import resources
from typing import Any, Callable

import attrs


class ConfigError(Exception):
    """A user error in the configuration file: printed as one line, never a traceback."""

    def __init__(self, path: str, key: str, problem: str):
        self.path, self.key, self.problem = path, key, problem
        where = ": ".join(part for part in (path, key) if part)
        super().__init__(f"{where}: {problem}" if where else problem)


# -- value checks: each returns the (possibly normalised) value or raises ValueError ----------

def _address(value: str) -> str:
    if value in ("localhost",):
        return "127.0.0.1"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address")
    return value


def _port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError(f"port {value} is out of range 0-65535")
    return value


def _positive(value):
    if value <= 0:
        raise ValueError(f"{value} must be greater than 0")
    return value


def _non_negative(value):
    if value < 0:
        raise ValueError(f"{value} must not be negative")
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return check


def _some_of(what: str, *choices: str) -> Callable[[list], list]:
    """A check for a non-empty list whose items are among ``choices``."""
    def check(value: list) -> list:
        for item in value:
            if item not in choices:
                raise ValueError(f"unknown {what} {item!r} ({', '.join(choices)})")
        if not value:
            raise ValueError(f"at least one {what} is needed")
        return value
    return check


_transports = _some_of("transport", "udp", "tcp")
_algorithms = _some_of("digest algorithm", "MD5", "SHA-256")


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not host:port")
    return value


def _port_range(value: str) -> str:
    low, sep, high = value.partition("-")
    if not (sep and low.isdigit() and high.isdigit() and 1024 <= int(low) < int(high) <= 65535):
        raise ValueError(f"{value!r} is not a port range like 20000-29999 (1024-65535)")
    if (int(high) - int(low) + 1) < 2:
        raise ValueError(f"{value!r} holds no RTP/RTCP port pair")
    return value


def _addresses(value: list) -> list:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network")
    return value


@attrs.frozen
class Key:
    type: type | tuple
    default: Any
    check: Callable[[Any], Any] | None = None
    path: bool = False          # a filesystem path, made absolute relative to the config file


_LOG_LEVELS = ("debug", "info", "warn", "error", "critical")

SCHEMA: dict[str, dict[str, Key]] = {
    "sip": {
        "domain": Key(str, "mss.local"),
        "advertise": Key(str, ""),      # address written in Via/Contact; empty: per route
        "bind": Key(str, "0.0.0.0", _address),
        "port": Key(int, 5060, _port),
        "transports": Key(list, ["udp", "tcp"], _transports),
        "trace": Key(bool, False),
        "max_message_size": Key(int, 65535, _positive),
        "max_headers": Key(int, 256, _positive),
        "user_agent": Key(str, "mss"),
        "t1_ms": Key(int, 500, _positive),
        "t2_ms": Key(int, 4000, _positive),
        "t4_ms": Key(int, 5000, _positive),
        "tcp_idle_timeout": Key(int, 600, _positive),
    },
    "log": {
        "level": Key(str, "info", _one_of(*_LOG_LEVELS)),
        "json_file": Key(str, "", path=True),
    },
    "store": {
        "path": Key(str, "mss.sqlite", path=True),
        "poll_interval": Key((int, float), 1.0, _positive),
    },
    "registrar": {
        "min_expires": Key(int, 60, _positive),
        "max_expires": Key(int, 3600, _positive),
        "default_expires": Key(int, 3600, _positive),
        "max_devices": Key(int, 5, _positive),
    },
    "auth": {
        "realm": Key(str, ""),                    # empty: the SIP domain
        "nonce_lifetime": Key(int, 300, _positive),
        "secret_file": Key(str, "", path=True),      # empty: secret.key next to the store
        "algorithms": Key(list, ["MD5"], _algorithms),
    },
    "security": {
        "ban_threshold": Key(int, 10, _positive),
        "ban_window": Key(int, 60, _positive),
        "ban_time": Key(int, 600, _positive),
        "allow": Key(list, [], _addresses),
        "drop_user_agents": Key(list, ["friendly-scanner", "sipvicious", "sipcli", "sip-scan"]),
        "min_password_length": Key(int, 8, _positive),       # extension passwords (mssctl)
    },
    "calls": {
        "no_answer_timeout": Key(int, 30, _positive),
        "max_duration": Key(int, 14400, _non_negative),      # 0: unlimited
        "max_setup": Key(int, 200, _positive),                 # calls being set up at once
        "retry_after": Key(int, 5, _positive),
        "prefer_100rel": Key(bool, False),
        "call_waiting": Key(bool, True),
    },
    "media": {
        "mode": Key(str, "child", _one_of("child", "remote", "off")),
        # empty: child mode picks a free loopback port at start-up; remote mode needs one
        "control": Key(str, "", lambda v: _host_port(v) if v else v),
        "rtp_ports": Key(str, "20000-29999", _port_range),
        "public_address": Key(str, "127.0.0.1", _address),
        "bind": Key(str, "", lambda v: _address(v) if v else v),   # empty: public_address
        "media_timeout": Key(int, 60, _positive),
        "workers": Key(int, 0, _non_negative),                # 0: one per core
    },
    "services": {
        "path": Key(str, "", path=True),        # empty: lua/services beside etc/, else the packaged one
        "instruction_budget": Key(int, 200000, _positive),
        "memory_limit": Key(int, 8 * 1024 * 1024, _positive),
        "max_failures": Key(int, 5, _positive),
        "forward_limit": Key(int, 5, _positive),
        "seed": Key(int, 0, _non_negative),     # mss.random's seed; 0: random (tests set one)
    },
    "manhole": {
        "enabled": Key(bool, False),
        "bind": Key(str, "127.0.0.1", _address),
        "port": Key(int, 2222, _port),
        "authorized_keys": Key(str, "", path=True),
        "password_file": Key(str, "", path=True),
        "host_key": Key(str, "", path=True),         # empty: manhole_host_key next to the store
    },
    "metrics": {
        "enabled": Key(bool, False),
        "bind": Key(str, "127.0.0.1", _address),
        "port": Key(int, 9060, _port),
    },
    "admin": {
        "control_socket": Key(str, "", path=True),   # empty: mss.ctl next to the store file
    },
    "shutdown": {
        "grace_period": Key(int, 10, _non_negative),
    },
}


#: Where the configuration is looked for when no ``--config`` is given, in order.
ENVIRONMENT = "MSS_CONFIG"
SYSTEM_PATH = "/etc/mss/mss.toml"
SEARCH_ORDER = f"--config, ${ENVIRONMENT}, ./etc/mss.toml, {SYSTEM_PATH}"

#: The installed package: nothing mss writes may live here (a reinstall deletes it).
PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))


def example_path() -> str:
    """The example configuration shipped inside the package (a template, never used as is)."""
    return str(resources.files("mss").joinpath("etc/mss.toml"))


def locate(explicit: str | None = None, environ=None, cwd: str | None = None) -> str:
    """The configuration file in use, found in ``SEARCH_ORDER``; ``ConfigError`` if none.

    An explicit or ``$MSS_CONFIG`` file is returned even when missing, so that loading it
    reports it by name instead of silently reading another one.
    """
    if explicit:
        return explicit
    environ = os.environ if environ is None else environ
    if environ.get(ENVIRONMENT):
        return environ[ENVIRONMENT]
    local = os.path.join(cwd or os.getcwd(), "etc", "mss.toml")
    if os.path.isfile(local):
        return local
    if os.path.isfile(SYSTEM_PATH):
        return SYSTEM_PATH
    raise ConfigError("", "", f"no configuration file (looked for {SEARCH_ORDER}); copy the "
                      f"example {example_path()} to {SYSTEM_PATH} or ./etc/mss.toml and adjust "
                      f"[store] path, or name one with --config FILE or ${ENVIRONMENT}")


def default_path() -> str:
    """The file used without ``--config`` (see ``locate``)."""
    return locate(None)


def _inside_package(path: str) -> bool:
    real = os.path.realpath(path)
    return real == PACKAGE_DIR or real.startswith(PACKAGE_DIR + os.sep)


def default_services(base: str) -> str:
    """``lua/services`` beside the configuration's ``etc/`` (a checkout or an install root such
    as ``/opt/mss``) when there is one, else the packaged services: the switch and ``mssctl
    services check`` thus read the same directory whichever copy of mss each imported."""
    local = os.path.normpath(os.path.join(base, os.pardir, "lua", "services"))
    if os.path.isdir(local):
        return local
    return str(resources.files("mss").joinpath("lua/services"))


class Config(dict):
    """Validated settings: ``config[section][key]``; ``config.path`` is the file read."""
    path: str = ""


def check_section(path: str, section: str, given: dict, keys: dict[str, Key],
                  errors: list[ConfigError], base: str = "") -> dict:
    """Validate one section's values against ``keys``; problems are appended to ``errors``."""
    out = {}
    for name in given:
        if name not in keys:
            errors.append(ConfigError(path, f"{section}.{name}", "unknown key"))
    for name, key in keys.items():
        value = given.get(name, key.default)
        full = f"{section}.{name}"
        types = key.type if isinstance(key.type, tuple) else (key.type,)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            want = " or ".join(t.__name__ for t in types)
            errors.append(ConfigError(path, full, f"expected {want}, got {type(value).__name__} {value!r}"))
            continue
        if key.check is not None:
            try:
                value = key.check(value)
            except ValueError as e:
                errors.append(ConfigError(path, full, str(e)))
                continue
        if key.path and value and not os.path.isabs(value):
            value = os.path.join(base, value)
        out[name] = value
    return out


#: Files mss creates or writes: they must not resolve inside the installed package.
WRITTEN = (("store", "path"), ("log", "json_file"), ("auth", "secret_file"),
           ("manhole", "host_key"), ("admin", "control_socket"))


def _check(path: str, raw: dict, errors: list[ConfigError]) -> Config:
    base = os.path.dirname(os.path.abspath(path))
    config = Config()
    config.path = path
    for section, value in raw.items():
        if section not in SCHEMA:
            errors.append(ConfigError(path, section, f"unknown section [{section}]"))
        elif not isinstance(value, dict):
            errors.append(ConfigError(path, section, "must be a table ([section])"))
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            given = {}
        out = check_section(path, section, given, keys, errors, base)
        config[section] = out
    if not errors:
        if not config["auth"]["realm"]:
            config["auth"]["realm"] = config["sip"]["domain"]
        # files the switch creates live next to the store unless placed elsewhere
        var = os.path.dirname(config["store"]["path"])
        for section, key, name in (("auth", "secret_file", "secret.key"),
                                   ("manhole", "host_key", "manhole_host_key"),
                                   ("admin", "control_socket", "mss.ctl")):
            if not config[section][key]:
                config[section][key] = os.path.join(var, name)
        if not config["services"]["path"]:
            config["services"]["path"] = default_services(base)
        for section, key in WRITTEN:
            value = config[section][key]
            if value and value != ":memory:" and _inside_package(value):
                errors.append(ConfigError(path, f"{section}.{key}", (
                    f"{os.path.normpath(value)} is inside the installed mss package (a "
                    f"reinstall deletes it); copy {os.path.basename(path)} to {SYSTEM_PATH} or "
                    f"./etc/mss.toml and point it at a writable place such as /var/lib/mss")))
                break                   # the others follow the store: one line is enough
        if config["media"]["mode"] == "remote" and not config["media"]["control"]:
            errors.append(ConfigError(path, "media.control", "is required when media.mode is "
                                      "\"remote\" (the gateway's ng address, host:port)"))
        if config["registrar"]["min_expires"] > config["registrar"]["max_expires"]:
            errors.append(ConfigError(path, "registrar.min_expires", "is greater than registrar.max_expires"))
    return config


def _read(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(path, "", f"cannot read file: {e.strerror}")
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}")


def problems(path: str) -> list[ConfigError]:
    """Every problem in the file at once (empty when the file is good)."""
    try:
        raw = _read(path)
    except ConfigError as e:
        return [e]
    errors: list[ConfigError] = []
    _check(path, raw, errors)
    return errors


def load(path: str | None = None) -> Config:
    """Read and validate the file ``path`` (else the one ``locate`` finds); raise the first
    ``ConfigError``."""
    path = locate(path)
    raw = _read(path)
    errors: list[ConfigError] = []
    config = _check(path, raw, errors)
    if errors:
        raise errors[0]
    return config


def from_dict(raw: dict, path: str = "<test>") -> Config:
    """Validate settings given as a dict (tests, embedding)."""
    errors: list[ConfigError] = []
    config = _check(path, raw, errors)
    if errors:
        raise errors[0]
    return config
