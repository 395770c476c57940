"""Open the one fabric Connection a run uses to reach a site's login node."""

from __future__ import annotations

import getpass
import socket
import stat
from pathlib import Path

import paramiko
from fabric import Config, Connection

from launcher.config import Site
from launcher.errors import AuthenticationError, HostUnreachableError, KeyFileError, SSHError

CONNECT_TIMEOUT = 15
KEEPALIVE_SECONDS = 15


def check_key_file(path: Path) -> None:
    """Refuse a private key that is missing, unreadable or readable by others (like OpenSSH)."""
    if not path.exists():
        raise KeyFileError(f"key file {path} does not exist. Fix 'keypath' in platforms.ini.")
    if not path.is_file():
        raise KeyFileError(f"key file {path} is not a regular file. Point 'keypath' at the key.")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has open permissions ({mode:04o}); SSH refuses such keys. "
            f"Fix: chmod 600 {path}"
        )
    try:
        path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"key file {path} is unreadable ({exc.strerror}). Check its owner.")


def load_key(path: Path, passphrase: str | None = None) -> paramiko.PKey:
    """Load a private key, asking for its passphrase once (kept in memory only) if needed."""
    check_key_file(path)
    try:
        return paramiko.PKey.from_path(path, passphrase)
    except paramiko.PasswordRequiredException:
        if passphrase is not None:
            raise KeyFileError(f"wrong passphrase for key file {path}.") from None
        return load_key(path, getpass.getpass(f"Passphrase for {path}: "))
    except paramiko.SSHException as exc:
        if passphrase is not None and "password" in str(exc).lower():
            raise KeyFileError(f"wrong passphrase for key file {path}.") from None
        raise KeyFileError(
            f"key file {path} is unreadable as an SSH private key ({exc}). "
            "Point 'keypath' at an OpenSSH private key (not the .pub file)."
        ) from None
    except (ValueError, OSError) as exc:
        raise KeyFileError(
            f"key file {path} is unreadable as an SSH private key ({exc}). "
            "Point 'keypath' at an OpenSSH private key (not the .pub file)."
        ) from None


class SiteConnector:
    """Build and (re)open fabric Connections to one site, reusing the loaded key."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self._pkey: paramiko.PKey | None = None

    def connection(self) -> Connection:
        """Return a new, not yet opened Connection to the site's login node."""
        site = self.site
        assert site.host is not None
        config = Config(overrides={"load_ssh_configs": True})
        ssh_host = config.base_ssh_config.lookup(site.host)
        connect_kwargs: dict[str, object] = {"banner_timeout": CONNECT_TIMEOUT,
                                             "auth_timeout": CONNECT_TIMEOUT}
        key = site.keypath or _first_identity(ssh_host.get("identityfile"))
        if key is not None:
            if self._pkey is None:
                self._pkey = load_key(key)
            connect_kwargs["pkey"] = self._pkey
            connect_kwargs["look_for_keys"] = False
        gateway = None
        if site.proxy_jump:
            gateway = Connection(site.proxy_jump, config=config, connect_timeout=CONNECT_TIMEOUT)
        return Connection(
            site.host,
            user=site.user,
            port=site.port,
            config=config,
            gateway=gateway,
            connect_timeout=CONNECT_TIMEOUT,
            connect_kwargs=connect_kwargs,
        )

    def open(self) -> Connection:
        """Open a Connection with keepalive, translating failures into readable errors."""
        conn = self.connection()
        where = f"{conn.user}@{conn.host}:{conn.port}"
        try:
            conn.open()
        except paramiko.AuthenticationException as exc:
            raise AuthenticationError(
                f"{where} refused authentication ({exc}). Check 'user' and 'keypath' for site "
                f"'{self.site.uid}' and that the public key is in ~/.ssh/authorized_keys there."
            ) from None
        except (TimeoutError, socket.timeout) as exc:
            raise HostUnreachableError(
                f"{where} did not answer within {CONNECT_TIMEOUT}s ({exc or 'timeout'}). "
                "Check 'host'/'port', your network or VPN, and 'proxy_jump'."
            ) from None
        except (socket.gaierror, paramiko.ssh_exception.NoValidConnectionsError, OSError) as exc:
            raise HostUnreachableError(
                f"cannot reach {where} ({exc}). Check 'host'/'port', your network or VPN, "
                "and 'proxy_jump'."
            ) from None
        except paramiko.SSHException as exc:
            raise SSHError(f"SSH to {where} failed ({exc}).") from None
        transport = conn.client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_SECONDS)
        return conn


def _first_identity(files: list[str] | None) -> Path | None:
    """Return the first IdentityFile from ~/.ssh/config that exists."""
    for name in files or []:
        path = Path(name).expanduser()
        if path.exists():
            return path
    return None
