"""How the launcher logs in to a login node: like OpenSSH's client.

Keys are tried in OpenSSH's order: the keys an ssh-agent holds (``SSH_AUTH_SOCK``), then the key
file: ``keypath`` from platforms.ini, else the ``IdentityFile`` entries of ``~/.ssh/config``, else
``~/.ssh/id_rsa``, ``id_ecdsa`` and ``id_ed25519``. A passphrase-protected key file is asked for
its passphrase once, on the terminal, and only when no agent key was accepted; the decrypted key
stays in this process's memory for the whole run (reconnects reuse it) and is never written.

When the login node accepts the key and asks for more (``AuthenticationMethods
publickey,keyboard-interactive``, for a TOTP code), its questions are answered on the terminal,
once per SSH connection. Without a terminal nothing is asked: a passphrase or a second factor
ends in one line that says what to do instead.

`LoginStrategy` is a `paramiko.auth_strategy.AuthStrategy`, handed to ``SSHClient.connect`` as
``auth_strategy`` (fabric passes ``connect_kwargs`` through).
"""

from __future__ import annotations

import atexit
import base64
import getpass
import io
import os
import select
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from paramiko.auth_strategy import (
    AuthFailure,
    AuthResult,
    AuthSource,
    AuthStrategy,
    InMemoryPrivateKey,
    PrivateKey,
    SourceResult,
)

from eoshared.errors import AuthenticationError, KeyFileError

DEFAULT_KEY_NAMES = ("id_rsa", "id_ecdsa", "id_ed25519")
SECOND_FACTOR_ATTEMPTS = 3  # like OpenSSH's NumberOfPasswordPrompts
SECOND_FACTOR_SECONDS = 110.0  # time to answer the login node's questions (sshd's LoginGraceTime
# is 120 s); an unanswered prompt ends, so no reader is left waiting on the terminal
KEYBOARD_INTERACTIVE = "keyboard-interactive"
OPENSSH_ARMOR = b"-----BEGIN OPENSSH PRIVATE KEY-----"
OPENSSH_MAGIC = b"openssh-key-v1\0"
PUBLIC_KEY_PREFIXES = (b"ssh-", b"ecdsa-sha2-", b"sk-ssh-", b"sk-ecdsa-")
PARAMIKO_KEY_CLASSES: tuple[tuple[type[Any], type[paramiko.PKey]], ...] = (
    (rsa.RSAPrivateKey, paramiko.RSAKey),
    (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
    (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
)


# --------------------------------------------------------------------------------------------
# the terminal


def has_terminal() -> bool:
    """True when the launcher can ask the user something (stdin is a terminal)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def ask(prompt: str, echo: bool, timeout: float | None = None) -> str:
    """Ask on the terminal (/dev/tty), without echo for secrets; TimeoutError when nobody
    answers within ``timeout`` seconds (the terminal's echo is restored either way)."""
    try:
        import termios

        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except (ImportError, OSError):  # no controlling terminal (or no termios): standard streams
        return _ask_stdin(prompt, echo)
    try:
        saved = termios.tcgetattr(fd)
        if not echo:
            quiet = termios.tcgetattr(fd)
            quiet[3] &= ~termios.ECHO
            _ECHO_OFF.append(saved)
            termios.tcsetattr(fd, termios.TCSAFLUSH, quiet)
        try:
            os.write(fd, prompt.encode())
            return _read_line(fd, timeout).decode(errors="replace").rstrip("\r\n")
        finally:
            if not echo:
                termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
                _ECHO_OFF.remove(saved)
                os.write(fd, b"\n")
    finally:
        os.close(fd)


# Terminal settings of prompts still waiting (without echo) in another thread, such as
# paramiko's while it answers keyboard-interactive: restored if the process exits meanwhile
# (after Ctrl-C), so the user's shell does not stay without echo.
_ECHO_OFF: list[list[Any]] = []


@atexit.register
def _restore_echo() -> None:
    if not _ECHO_OFF:
        return
    import termios

    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return
    try:
        termios.tcsetattr(fd, termios.TCSAFLUSH, _ECHO_OFF[0])
        os.write(fd, b"\n")
    finally:
        os.close(fd)


def _ask_stdin(prompt: str, echo: bool) -> str:
    if not echo:
        return getpass.getpass(prompt)
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def _read_line(fd: int, timeout: float | None) -> bytes:
    deadline = None if timeout is None else time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not select.select([fd], [], [], wait)[0]:
            raise TimeoutError
        chunk = os.read(fd, 1024)
        if not chunk:
            raise EOFError
        line += chunk
    return line


def say(line: str) -> None:
    """Tell the user something about logging in (on stderr, like OpenSSH)."""
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# key files


def private_key_of(path: Path) -> Path:
    """The private key a public key or certificate file belongs to."""
    name = path.name
    for suffix in ("-cert.pub", ".pub"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


def check_key_file(path: Path) -> None:
    """Refuse a private key that is missing, a public key, unreadable or readable by others
    (like OpenSSH)."""
    if not path.exists():
        raise KeyFileError(f"key file {path} does not exist. Fix 'keypath' in platforms.ini.")
    if not path.is_file():
        raise KeyFileError(f"key file {path} is not a regular file. Point 'keypath' at the key.")
    if path.name.endswith(".pub"):
        raise _public_key_error(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has open permissions ({mode:04o}); SSH refuses such keys. "
            f"Fix: chmod 600 {path}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(
            f"key file {path} is unreadable ({exc.strerror}). Check its owner."
        ) from None
    if data.lstrip().startswith(PUBLIC_KEY_PREFIXES):
        raise _public_key_error(path)


def _public_key_error(path: Path) -> KeyFileError:
    private = private_key_of(path)
    if private == path:
        return KeyFileError(
            f"{path} is a public key; point keypath at its private key (the file without .pub)."
        )
    return KeyFileError(f"{path} is a public key; point keypath at the private key {private}")


def is_encrypted(data: bytes) -> bool:
    """True when a private key file is protected by a passphrase (OpenSSH, PEM or PKCS#8)."""
    text = data.strip()
    if text.startswith(OPENSSH_ARMOR):
        body = b"".join(line for line in text.splitlines() if not line.startswith(b"-----"))
        try:
            raw = base64.b64decode(body)
        except ValueError:
            return False
        if not raw.startswith(OPENSSH_MAGIC):
            return False
        start = len(OPENSSH_MAGIC) + 4
        length = int.from_bytes(raw[len(OPENSSH_MAGIC) : start], "big")
        return raw[start : start + length] != b"none"
    return b"Proc-Type: 4,ENCRYPTED" in data or b"BEGIN ENCRYPTED PRIVATE KEY" in data


def load_key(path: Path, passphrase: str | None = None) -> paramiko.PKey:
    """Load a private key. A passphrase-protected one is decrypted with ``passphrase``, else with
    one asked for once on the terminal; without a terminal the error says how to use the agent.
    The decrypted key exists only in this process's memory."""
    check_key_file(path)
    data = path.read_bytes()
    encrypted = is_encrypted(data)
    if encrypted and passphrase is None:
        if not has_terminal():
            raise KeyFileError(
                f"key file {path} is protected by a passphrase and there is no terminal to ask "
                f"for it. Add the key to your ssh-agent (ssh-add {path}) or run from a terminal."
            )
        try:
            passphrase = ask(f"Enter passphrase for key '{path}': ", echo=False)
        except EOFError:
            raise KeyFileError(f"no passphrase given for key file {path}.") from None
    password = passphrase.encode() if encrypted and passphrase is not None else None
    loaded: Any
    try:
        if data.lstrip().startswith(OPENSSH_ARMOR):
            loaded = serialization.load_ssh_private_key(data, password)
        else:
            loaded = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if encrypted:
            raise KeyFileError(f"wrong passphrase for key file {path}.") from None
        reason = str(exc).split(". ")[0] if b"-----BEGIN" in data else "no private key in it"
        raise KeyFileError(
            f"key file {path} is unreadable as an SSH private key ({reason}). "
            "Point 'keypath' at an OpenSSH private key (not the .pub file)."
        ) from None
    key = _paramiko_key(loaded, path)
    certificate = path.with_name(path.name + "-cert.pub")
    if certificate.is_file():
        key.load_certificate(str(certificate))
    return key


def _paramiko_key(loaded: Any, path: Path) -> paramiko.PKey:
    """The paramiko key of a decrypted private key (re-encoded in memory, never on disk)."""
    for crypto_class, key_class in PARAMIKO_KEY_CLASSES:
        if isinstance(loaded, crypto_class):
            text = loaded.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ).decode()
            return key_class.from_private_key(io.StringIO(text))
    raise KeyFileError(
        f"key file {path} holds a {type(loaded).__name__}, which the launcher cannot use. "
        "Use an ed25519, ECDSA or RSA key."
    )


def public_blob(path: Path) -> bytes | None:
    """The public key of a private key file, from its .pub file (without decrypting anything)."""
    try:
        fields = path.with_name(path.name + ".pub").read_text().split()
        return base64.b64decode(fields[1]) if len(fields) >= 2 else None
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# what a run knows to log in


@dataclass(frozen=True)
class Destination:
    """Who logs in where."""

    user: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass
class KeyFile:
    """A key file to offer: from keypath or IdentityFile (explicit), or an OpenSSH default."""

    path: Path
    explicit: bool = True


class Credentials:
    """What one run uses to log in to a site (and its jump host): key files decrypted once and
    kept in memory for reconnects, and which destinations a login already completed for."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        self._keys: dict[Path, paramiko.PKey] = {}
        self._logins: dict[Destination, int] = {}
        self._lock = threading.Lock()

    def key(self, path: Path) -> paramiko.PKey:
        """The key in ``path``, loaded (and its passphrase asked for) on first use only."""
        with self._lock:
            if path not in self._keys:
                self._keys[path] = load_key(path)
            return self._keys[path]

    def loaded(self, path: Path) -> paramiko.PKey | None:
        """The key in ``path`` if it is already in memory."""
        return self._keys.get(path)

    def check(self, key_file: KeyFile) -> None:
        """Check a configured key file before connecting; a key without passphrase is loaded
        now, a passphrase-protected one only when the agent's keys were not accepted."""
        if not key_file.explicit:
            return
        check_key_file(key_file.path)
        if not is_encrypted(key_file.path.read_bytes()):
            self.key(key_file.path)

    def logged_in(self, destination: Destination) -> None:
        """Record a completed login."""
        with self._lock:
            self._logins[destination] = self._logins.get(destination, 0) + 1

    def logins(self, destination: Destination) -> int:
        """How many logins to ``destination`` completed during this run."""
        return self._logins.get(destination, 0)

    def strategy(
        self, destination: Destination, ssh_config: paramiko.SSHConfigDict, keypath: Path | None
    ) -> LoginStrategy:
        """The auth strategy of one connection (key files checked before connecting)."""
        files = key_files(keypath, ssh_config)
        for key_file in files:
            self.check(key_file)
        identities_only = str(ssh_config.get("identitiesonly", "no")).lower() == "yes"
        return LoginStrategy(ssh_config, self, destination, files, identities_only)


def key_files(keypath: Path | None, ssh_config: paramiko.SSHConfigDict) -> list[KeyFile]:
    """The key files OpenSSH would offer: keypath, else IdentityFile entries, else defaults."""
    if keypath is not None:
        return [KeyFile(Path(keypath).expanduser())]
    configured = [Path(p).expanduser() for p in ssh_config.get("identityfile") or []]
    existing = [KeyFile(p) for p in configured if p.exists()]
    if configured:
        return existing
    ssh_dir = Path("~/.ssh").expanduser()
    return [
        KeyFile(ssh_dir / name, explicit=False)
        for name in DEFAULT_KEY_NAMES
        if (ssh_dir / name).is_file()
    ]


# --------------------------------------------------------------------------------------------
# the auth sources and the strategy


class AgentKeySource(InMemoryPrivateKey):
    """A key held by the ssh-agent."""

    def __repr__(self) -> str:
        comment = getattr(self.pkey, "comment", "")
        return f"agent key {self.pkey.fingerprint}" + (f" ({comment})" if comment else "")


class KeyFileSource(PrivateKey):
    """A key file, decrypted on first use (through `Credentials`, so once per run)."""

    def __init__(self, username: str, key_file: KeyFile, credentials: Credentials) -> None:
        super().__init__(username=username)
        self.key_file = key_file
        self.credentials = credentials

    def __repr__(self) -> str:
        return f"key file {self.key_file.path}"

    def authenticate(self, transport: paramiko.Transport) -> list[str]:
        self.pkey = self.credentials.key(self.key_file.path)
        result: list[str] = super().authenticate(transport)
        return result


class TerminalQuestions(AuthSource):
    """keyboard-interactive: the login node's questions (a TOTP code) answered on the terminal,
    the answers without echo when the server asks so."""

    def __init__(self, username: str, destination: Destination, again: bool) -> None:
        super().__init__(username=username)
        self.destination = destination
        self.again = again
        self.unanswered = False

    def __repr__(self) -> str:
        return "keyboard-interactive on the terminal"

    def authenticate(self, transport: paramiko.Transport) -> list[str]:
        # The answers are typed by a person: wait longer than the connect timeout, and longer
        # than the prompt waits for them.
        transport.auth_timeout = max(transport.auth_timeout or 0.0, SECOND_FACTOR_SECONDS + 30)
        result: list[str] = transport.auth_interactive(self.username, self.answer)
        return result

    def answer(
        self, title: str, instructions: str, prompts: Sequence[tuple[str, bool]]
    ) -> list[str]:
        """Paramiko's interactive handler (called from the transport's thread)."""
        if not prompts:
            return []
        if self.again:
            say(
                f"the SSH connection to {self.destination.host} was lost; the login node asks "
                "for the second factor again"
            )
            self.again = False
        for text in (title, instructions):
            if text and text.strip():
                say(text.strip())
        who = f"({self.destination.user}@{self.destination.host})"
        try:
            return [
                ask(f"{who} {prompt.strip()} ", echo, SECOND_FACTOR_SECONDS)
                for prompt, echo in prompts
            ]
        except (EOFError, TimeoutError):
            self.unanswered = True
            return [""] * len(prompts)


class LoginStrategy(AuthStrategy):
    """Agent keys, then the key file; keyboard-interactive on the terminal when the login node
    accepts a key and asks for a second factor."""

    def __init__(
        self,
        ssh_config: paramiko.SSHConfigDict,
        credentials: Credentials,
        destination: Destination,
        files: list[KeyFile],
        identities_only: bool = False,
    ) -> None:
        super().__init__(ssh_config=ssh_config)
        self.credentials = credentials
        self.destination = destination
        self.files = files
        self.identities_only = identities_only
        self.username = destination.user
        self.connection_closed = False
        self._agent: paramiko.Agent | None = None

    def _agent_keys(self) -> list[paramiko.AgentKey]:
        try:
            self._agent = paramiko.Agent()
            return list(self._agent.get_keys())
        except paramiko.SSHException as exc:  # a dead or confused agent: go on without it
            self.log.info(f"ssh-agent unavailable: {exc}")
            return []

    def _file_blobs(self) -> dict[bytes, KeyFile]:
        blobs = {}
        for key_file in self.files:
            loaded = self.credentials.loaded(key_file.path)
            blob = loaded.asbytes() if loaded is not None else public_blob(key_file.path)
            if blob is not None:
                blobs[blob] = key_file
        return blobs

    def get_sources(self) -> Iterator[AuthSource]:
        """The agent's keys (those of the key file first), then the key files not yet tried."""
        blobs = self._file_blobs()
        agent_keys = self._agent_keys()
        matching = [k for k in agent_keys if k.asbytes() in blobs]
        others = [] if self.identities_only else [k for k in agent_keys if k not in matching]
        for key in matching + others:
            yield AgentKeySource(self.username, key)
        tried = {blobs[k.asbytes()].path for k in matching}
        for key_file in self.files:
            if key_file.path not in tried:
                yield KeyFileSource(self.username, key_file, self.credentials)

    def authenticate(self, transport: paramiko.Transport) -> AuthResult:
        """Try the sources in order; hand over to `_second_factor` when a key is accepted and
        the login node wants more. A key file that cannot be used (its passphrase cannot be
        asked, or was wrong) is skipped like OpenSSH does, and reported if nothing else works."""
        result = AuthResult(strategy=self)
        unusable: KeyFileError | None = None
        try:
            for source in self.get_sources():
                try:
                    remaining = source.authenticate(transport)
                except KeyFileError as exc:
                    unusable = unusable or exc
                    continue
                except paramiko.BadAuthenticationType as exc:
                    result.append(SourceResult(source, exc))
                    if "publickey" not in exc.allowed_types:
                        return self._second_factor(transport, result, exc.allowed_types)
                    continue
                except paramiko.SSHException as exc:
                    result.append(SourceResult(source, exc))
                    if not transport.is_active():
                        self.connection_closed = True
                        break
                    continue
                result.append(SourceResult(source, remaining))
                if not remaining:
                    self.credentials.logged_in(self.destination)
                    return result
                return self._second_factor(transport, result, remaining)
        finally:
            if self._agent is not None:
                self._agent.close()
                self._agent = None
        if unusable is not None:
            raise unusable
        raise AuthFailure(result=result)

    def _second_factor(
        self, transport: paramiko.Transport, result: AuthResult, allowed: Sequence[str]
    ) -> AuthResult:
        """Answer keyboard-interactive on the terminal (up to three tries, like OpenSSH)."""
        where = self.destination
        if KEYBOARD_INTERACTIVE not in allowed:
            raise AuthenticationError(
                f"{where} asks for {', '.join(allowed)} after the key; the launcher answers "
                f"only {KEYBOARD_INTERACTIVE} (site '{self.credentials.uid}')."
            )
        if not has_terminal():
            raise AuthenticationError(
                f"site '{self.credentials.uid}' ({where}) asks for a second factor "
                f"({KEYBOARD_INTERACTIVE}); run the launcher from a terminal to answer it."
            )
        again = self.credentials.logins(where) > 0
        for attempt in range(1, SECOND_FACTOR_ATTEMPTS + 1):
            source = TerminalQuestions(self.username, where, again)
            try:
                remaining = source.authenticate(transport)
            except paramiko.SSHException as exc:
                result.append(SourceResult(source, exc))
                if source.unanswered:
                    raise AuthenticationError(
                        f"nobody answered the second-factor question of {where} within "
                        f"{SECOND_FACTOR_SECONDS:.0f} s."
                    ) from None
                if not transport.is_active():
                    break
                if attempt < SECOND_FACTOR_ATTEMPTS:
                    say("the login node did not accept the answer; try again")
                again = False
                continue
            result.append(SourceResult(source, remaining))
            if remaining:
                raise AuthenticationError(
                    f"{where} asks for {', '.join(remaining)} after the second factor; the "
                    "launcher cannot answer that."
                )
            self.credentials.logged_in(where)
            return result
        raise AuthenticationError(
            f"{where} did not accept the answers to its second-factor questions "
            f"({KEYBOARD_INTERACTIVE}). Check the code (and the clock of the device that "
            "makes it) and try again."
        )


def refusal_message(where: str, uid: str, exc: paramiko.AuthenticationException) -> str:
    """One line for a refused login: who refused (the login node, or the jump host on the way),
    what was tried, and what to check."""
    strategy = getattr(getattr(exc, "result", None), "strategy", None)
    if isinstance(strategy, LoginStrategy):
        tried = [repr(entry.source) for entry in exc.result]
        detail = f"tried {', '.join(tried)}" if tried else "no key to offer: no agent, no key file"
        refused_by = str(strategy.destination)
    else:
        detail = str(exc).strip() or type(exc).__name__
        refused_by = where
    if refused_by != where:
        check = (
            f"{refused_by} (the jump host on the way to {where}) refused authentication "
            f"({detail}). Check 'proxy_jump' for site '{uid}', the jump host's entry in "
            "~/.ssh/config (User, IdentityFile) or your ssh-agent, and that the public key is in "
            "~/.ssh/authorized_keys there."
        )
    else:
        check = (
            f"{where} refused authentication ({detail}). Check 'user' and 'keypath' for site "
            f"'{uid}' and that the public key is in ~/.ssh/authorized_keys there."
        )
    if isinstance(strategy, LoginStrategy) and strategy.connection_closed:
        check += (
            " It closed the connection after too many keys: set 'IdentitiesOnly yes' for it in "
            "~/.ssh/config or remove keys from the agent."
        )
    return check
