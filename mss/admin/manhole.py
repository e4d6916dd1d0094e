# -*- test-case-name: tests.admin.test_manhole -*-
"""The SSH manhole: a Python prompt inside the running switch, for live inspection.

Off unless ``[manhole] enabled``; listens on ``[manhole] bind`` (127.0.0.1 by default) and
``port``. Who may log in:

- ``authorized_keys``: an OpenSSH ``authorized_keys`` file. It is read at every login, so a
  key added or removed takes effect at once; any login name is accepted with a listed key
  (the name is only logged).
- ``password_file``: lines ``NAME:HASH`` where HASH is ``$scrypt$n=16384,r=8,p=1$SALT$KEY``
  or ``$pbkdf2-sha256$ITERATIONS$SALT$KEY`` (base64 salt and key; ``mssctl manhole-password
  NAME`` prints such a line). Hashes are checked in a thread so a login never blocks calls.
  No clear password is ever read from ``mss.toml``.

The host key (``[manhole] host_key``) is an Ed25519 key generated at the first start and kept
(mode 0600), so the fingerprint operators accepted stays valid across restarts.

The namespace holds the running objects (``switch``, ``config``, ``core``, ``store``,
``directory``, ``registrar``, ``bindings``, ``bans``, ``calls``, ``trunks``, ``media``,
``services``) and helpers that show readable tables: ``registrations()``, ``calls()``,
``trunks()``, ``services()``, ``hangup(call_id)``, ``trace(on, extension=None, trunk=None)``,
``status()``. ``calls``, ``trunks`` and ``services`` are both: call them for the table, use
their attributes to reach the object (``calls.calls`` is the CallManager's dict). The shell
runs on the reactor thread: what you type stops the switch while it runs, so keep it short.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from twisted.application import service
from twisted.conch import manhole, manhole_ssh
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker
from twisted.conch.insults import insults
from twisted.conch.interfaces import IConchUser
from twisted.conch.ssh import keys
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, endpoints, threads
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mss.admin.operations import OperationError, Text, service_engine

log = Logger()

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
PBKDF2_ITERATIONS = 600_000


# -- password hashes ---------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, scheme: str = "scrypt") -> str:
    """A hash for the password file (random salt)."""
    salt = secrets.token_bytes(16)
    if scheme == "scrypt":
        key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                             dklen=32)
        return f"$scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(key)}"
    if scheme == "pbkdf2-sha256":
        key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ITERATIONS)
        return f"$pbkdf2-sha256${PBKDF2_ITERATIONS}${_b64(salt)}${_b64(key)}"
    raise ValueError(f"unknown hash scheme {scheme!r} (scrypt, pbkdf2-sha256)")


def verify_password(password: str, stored: str) -> bool:
    """Check a password against one stored hash; a malformed hash never matches."""
    try:
        _, scheme, params, salt, key = stored.split("$")
        salt, key = _unb64(salt), _unb64(key)
        if scheme == "scrypt":
            p = dict(item.split("=", 1) for item in params.split(","))
            n, r, par = int(p["n"]), int(p["r"]), int(p["p"])
            if not (2 <= n <= 2 ** 20 and 1 <= r <= 32 and 1 <= par <= 16):
                return False
            got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=par, dklen=len(key),
                                 maxmem=256 * 1024 * 1024)
        elif scheme == "pbkdf2-sha256":
            iterations = int(params)
            if not 1000 <= iterations <= 10_000_000:
                return False
            got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, len(key))
        else:
            return False
    except (ValueError, KeyError, TypeError):
        return False
    return hmac.compare_digest(got, key)


def read_password_file(path: str) -> dict[str, str]:
    """NAME -> hash; blank lines and ``#`` comments skipped; a malformed line is logged."""
    users = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            if not sep or not name or not stored.startswith("$"):
                log.warn("{path}:{line}: not NAME:HASH, ignored", path=path, line=number)
                continue
            users[name] = stored
    return users


@implementer(checkers.ICredentialsChecker)
class HashedPasswordChecker:
    """Username/password against the password file (re-read at each login)."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, path: str, reactor=None):
        self.path = path
        self.reactor = reactor

    def requestAvatarId(self, creds):
        try:
            users = read_password_file(self.path)
        except OSError as e:
            log.error("manhole password file {path}: {error}", path=self.path, error=e.strerror)
            return defer.fail(error.UnauthorizedLogin())
        name = creds.username.decode("utf-8", "replace")
        stored = users.get(name)
        password = creds.password.decode("utf-8", "replace")
        # unknown users cost the same hash as known ones
        stored_or_dummy = stored or _dummy_hash()
        if self.reactor is not None:
            d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                          verify_password, password, stored_or_dummy)
        else:
            d = defer.maybeDeferred(verify_password, password, stored_or_dummy)

        def checked(ok):
            if ok and stored is not None:
                return creds.username
            log.info("manhole: password refused for {user}", user=name)
            raise error.UnauthorizedLogin()
        return d.addCallback(checked)


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_hex(16)))
    return _DUMMY[0]


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """An OpenSSH ``authorized_keys`` file, read at each login; keys valid for any name."""

    def __init__(self, path: str):
        self.path = path

    def getAuthorizedKeys(self, username):
        try:
            with open(self.path, "rb") as f:
                lines = f.read(1024 * 1024).splitlines()
        except OSError as e:
            log.error("manhole authorized_keys {path}: {error}", path=self.path, error=e.strerror)
            return []
        out = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith(b"#"):
                continue
            try:
                out.append(keys.Key.fromString(line))
            except (keys.BadKeyError, ValueError, TypeError, IndexError):
                continue            # options before the key, or a key type we do not read
        return out


def load_or_create_host_key(path: str) -> keys.Key:
    """The manhole's private host key, generated (Ed25519, mode 0600) on first use."""
    try:
        with open(path, "rb") as f:
            return keys.Key.fromString(f.read())
    except FileNotFoundError:
        pass
    from cryptography.hazmat.primitives.asymmetric import ed25519
    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    data = key.toString("openssh")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    log.info("manhole host key generated in {path} ({fingerprint})", path=path,
             fingerprint=key.fingerprint(keys.FingerprintFormats.SHA256_BASE64))
    return key


# -- the namespace ------------------------------------------------------------------------------

class Handle:
    """An object of the switch that also shows a table when called (``calls()``)."""

    def __init__(self, target, table, name: str):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_name", name)

    def __call__(self):
        return self._table()

    def __getattr__(self, name):
        if self._target is None:
            raise AttributeError(f"this switch has no {self._name}")
        return getattr(self._target, name)

    def __repr__(self):
        return f"<{self._name}: {self._target!r}; call {self._name}() for a table>"


def namespace(switch, operations) -> dict:
    """What the manhole prompt sees."""

    def registrations():
        """Registered devices as a table."""
        return operations.registrations_table()

    def hangup(call_id):
        """End a live call with BYE on both legs."""
        try:
            result = operations.hangup(str(call_id), by="manhole")
        except OperationError as e:
            return Text(str(e))
        return Text(f"call {result['call_id']} ended")

    def trace(on=True, extension=None, trunk=None):
        """SIP trace in the log: everything, or one extension or trunk at a time."""
        try:
            state = operations.trace(bool(on), extension=extension, trunk=trunk)
        except OperationError as e:
            return Text(str(e))
        if not state["on"]:
            return Text("SIP trace off")
        if state["all"]:
            return Text("SIP trace on for every message")
        parts = [f"extensions {', '.join(state['extensions'])}"] if state["extensions"] else []
        if state["trunks"]:
            parts.append(f"trunks {', '.join(state['trunks'])}")
        return Text("SIP trace on for " + "; ".join(parts))

    def status():
        """Counts at a glance."""
        s = operations.summary()
        return Text(f"{s['calls']} live calls ({s['answered']} answered), "
                    f"{s['registrations']} registrations, "
                    f"{'accepting' if s['accepting'] else 'NOT accepting'} new calls")

    ns = {
        "switch": switch,
        "config": switch.settings,
        "core": switch.core,
        "store": switch.store,
        "directory": switch.directory,
        "registrar": switch.registrar,
        "bindings": switch.bindings,
        "bans": switch.bans,
        "calls": Handle(switch.calls, operations.calls_table, "calls"),
        "trunks": Handle(getattr(switch, "trunks", None), operations.trunks_table, "trunks"),
        "services": Handle(service_engine(switch), operations.services_table,
                           "services"),
        "media": getattr(switch, "media", None),
        "operations": operations,
        "registrations": registrations,
        "hangup": hangup,
        "trace": trace,
        "status": status,
    }
    return ns


# -- the session ---------------------------------------------------------------------------------

class ManholeSession(manhole_ssh.TerminalSession):
    """conch's terminal session, completed: its ``eofReceived`` and ``windowChanged`` raise
    ``NotImplementedError`` and a shell without a pty has no size, so ``ssh ... < /dev/null``,
    ``ssh -T`` or a resized window left an ``Unhandled Error`` traceback in the log."""

    width, height = 80, 24              # when the client asked for no pty
    _transport = None
    _lost = False

    def openShell(self, proto):
        self._transport = self.transportFactory(
            proto, self.chainedProtocolFactory(), IConchUser(self.original), self.width,
            self.height)

    def windowChanged(self, newWindowSize):
        self.height, self.width = newWindowSize[:2]
        if self._transport is not None:
            self._transport.chainedProtocol.terminalProtocol.terminalSize(self.width,
                                                                          self.height)

    def eofReceived(self):
        """The operator's input ended: close the session, as Ctrl-D at the prompt does."""
        if self._transport is not None:
            self._transport.proto.loseConnection()

    def closed(self):
        """Tell the shell its connection is gone, once (conch's session does not)."""
        if self._transport is not None and not self._lost:
            self._lost = True
            self._transport.chainedProtocol.connectionLost(Failure(ConnectionDone()))


# -- the service ---------------------------------------------------------------------------------

class ManholeService(service.Service):
    """Serves the manhole over SSH while the switch runs."""

    def __init__(self, namespace: dict, settings: dict, reactor):
        self.namespace = namespace
        self.settings = settings
        self.reactor = reactor
        self.port = None
        self.listening: defer.Deferred | None = None
        self.description = f"tcp:{settings['port']}:interface={settings['bind']}"

    def build_factory(self):
        """The SSH factory, or None (logged) when nobody could log in."""
        checkers_ = []
        if self.settings["authorized_keys"]:
            keydb = AuthorizedKeysFile(self.settings["authorized_keys"])
            checkers_.append(SSHPublicKeyChecker(keydb))
        if self.settings["password_file"]:
            checkers_.append(HashedPasswordChecker(self.settings["password_file"], self.reactor))
        if not checkers_:
            log.error("manhole enabled but neither [manhole] authorized_keys nor password_file "
                      "is set: not started")
            return None
        realm = manhole_ssh.TerminalRealm()
        realm.sessionFactory = ManholeSession
        ns = self.namespace

        def chained_protocol():
            return insults.ServerProtocol(manhole.ColoredManhole, ns)
        realm.chainedProtocolFactory = chained_protocol
        p = portal.Portal(realm, checkers_)
        factory = manhole_ssh.ConchFactory(p)
        key = load_or_create_host_key(self.settings["host_key"])
        factory.privateKeys = {key.sshType(): key}
        factory.publicKeys = {key.sshType(): key.public()}
        return factory

    def startService(self):
        super().startService()
        try:
            factory = self.build_factory()
        except Exception:
            log.failure("manhole not started")
            return
        if factory is None:
            return
        self.listening = endpoints.serverFromString(self.reactor, self.description).listen(factory)

        def listening(port):
            self.port = port
            log.info("manhole (SSH) on {host}:{port}", host=port.getHost().host,
                     port=port.getHost().port)
            return port

        def failed(failure):
            log.error("manhole {where} not available: {error}", where=self.description,
                      error=failure.getErrorMessage())
        self.listening.addCallbacks(listening, failed)

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
