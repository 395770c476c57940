"""`--add-platform`: add a site section to the user's platforms.ini interactively.

Every answer is checked before anything is written (the profile exists, the host resolves
or is a ~/.ssh/config alias, the key file is a readable private key, then the whole site
loads); the file is then replaced atomically, so a refused attempt leaves it as it was and
the same command can simply be run again. The shipped examples' file is never written.
"""

from __future__ import annotations

import configparser
import fnmatch
import io
import os
import re
import socket
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from eoshared.errors import ConfigError, LauncherError
from launcher.config.model import INI_NAME
from launcher.config.profiles import profile_path
from launcher.config.sites import build_site
from launcher.config.sources import ConfigSources, as_sources, ini_parser, read_ini, shipped_dir

QUESTIONS = (
    ("platform", "platform (profile name, e.g. generic-slurm, spider, snellius, delftblue)"),
    ("host", "login node host name or ~/.ssh/config alias"),
    ("user", "user name on the cluster (empty: from ~/.ssh/config)"),
    ("keypath", "private key file (empty: from ~/.ssh/config or the agent)"),
    ("partition", "partition for the Jupyter job (empty: the profile's)"),
    ("account", "account to charge (empty: none)"),
)
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NEW_FILE_HEADER = (
    "# eo-hpc sites: one [SITE] section per cluster; run-jupyter --mode sites lists them.\n"
    "# A section here wins over a shipped example site of the same name.\n"
)


def add_platform(config: ConfigSources | Path | None) -> int:
    """Ask for a site's keys, check them, and add the section to the user's file."""
    sources = as_sources(config)
    path = sources.own_file
    if _inside(path, shipped_dir()):
        raise ConfigError(
            f"{path} is the shipped examples' file; --add-platform never changes it. Run it "
            "without --config to add the site to your own platforms.ini."
        )
    existing_text = path.read_text(encoding="utf-8") if path.is_file() else ""
    existing = read_ini(path if path.is_file() else None)
    shipped_uids = read_ini(shipped_dir() / INI_NAME).sections()
    ask = Asker(interactive=sys.stdin.isatty(), path=path)

    def check_uid(uid: str) -> None:
        if not _UID.match(uid):
            raise ConfigError(
                f"site name {uid!r}: use letters, digits, '.', '_' or '-', starting with a "
                "letter or digit."
            )
        if uid in existing:
            raise ConfigError(f"site '{uid}' is already in {path}; choose another name.")

    uid = ask("site name (--uid)", check_uid)
    checks: dict[str, Callable[[str], None]] = {
        "platform": lambda v: _check_platform(v, sources),
        "host": check_host,
        "keypath": check_keypath,
    }
    section: dict[str, str] = {}
    for key, prompt in QUESTIONS:
        check = checks.get(key)
        value = ask(prompt, check, required=key in ("platform", "host"))
        if value:
            section[key] = value
    text = _merged_text(existing_text, uid, section)
    build_site(uid, section, path, sources)  # the whole site: profile and overrides
    write_atomic(path, text)
    overrides = f" (it overrides the shipped example [{uid}])" if uid in shipped_uids else ""
    config_arg = f" --config {path}" if sources.explicit is not None else ""
    print(
        f"added [{uid}] to {path}{overrides}; start it with: "
        f"run-jupyter{config_arg} --uid {uid} --mode run"
    )
    return 0


class Asker:
    """Asks one question at a time; a bad answer is asked again on a terminal, and refused
    (nothing written) otherwise."""

    def __init__(self, interactive: bool, path: Path) -> None:
        self.interactive = interactive
        self.path = path

    def __call__(
        self, prompt: str, check: Callable[[str], None] | None, required: bool = True
    ) -> str:
        while True:
            try:
                answer = input(f"{prompt}: ").strip()
            except EOFError:
                raise ConfigError(
                    f"no answer to '{prompt}'; nothing was written to {self.path}."
                ) from None
            try:
                if not answer and required:
                    raise ConfigError(f"'{prompt}' needs an answer.")
                if answer and check is not None:
                    check(answer)
                return answer
            except LauncherError as exc:
                if not self.interactive:
                    raise ConfigError(f"{exc} Nothing was written to {self.path}.") from None
                print(f"{exc} Try again.", file=sys.stderr)


def _check_platform(platform: str, sources: ConfigSources) -> None:
    profile_path(platform, sources)


def check_host(host: str) -> None:
    """A host name that resolves here, or a Host alias of ~/.ssh/config."""
    if ssh_alias(host):
        return
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"host '{host}' does not resolve ({reason}) and is no Host alias in "
            "~/.ssh/config. Check the name, or add a Host entry for it to ~/.ssh/config."
        ) from None


def ssh_alias(host: str) -> bool:
    """True if ~/.ssh/config gives `host` another HostName, a ProxyJump or a ProxyCommand
    (the name is then resolved by SSH, possibly beyond a jump host)."""
    path = Path.home() / ".ssh" / "config"
    if not path.is_file():
        return False
    import paramiko

    config = paramiko.SSHConfig.from_path(str(path))
    named = any(
        p != "*" and not p.startswith("!") and fnmatch.fnmatch(host, p)
        for p in config.get_hostnames()
    )
    entry = config.lookup(host)
    return named and (
        entry.get("hostname", host) != host or "proxyjump" in entry or "proxycommand" in entry
    )


def check_keypath(value: str) -> None:
    """A private key file SSH would accept (exists, a file, not open to others, readable)."""
    from launcher.connection.ssh import check_key_file

    check_key_file(Path(value).expanduser())


def _inside(path: Path, directory: Path) -> bool:
    return path.expanduser().resolve().parent == directory.resolve()


def _merged_text(existing: str, uid: str, section: dict[str, str]) -> str:
    """The file's new text: its old text unchanged, then the new section; checked to parse."""
    parser = configparser.ConfigParser(interpolation=None)
    parser[uid] = section
    buffer = io.StringIO()
    parser.write(buffer)
    head = existing or NEW_FILE_HEADER
    if not head.endswith("\n"):
        head += "\n"
    text = head + "\n" + buffer.getvalue().rstrip("\n") + "\n"
    check = ini_parser()
    try:
        check.read_string(text)
    except configparser.Error as exc:
        raise ConfigError(f"the new section does not parse ({exc}); nothing was written.") from exc
    if dict(check[uid]) != section:
        raise ConfigError(
            f"the answers {section} do not read back unchanged from an INI file (a ' ;' starts "
            "a comment there); nothing was written."
        )
    return text


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step (temporary file in the same directory, then
    rename): readers see the old or the new file, never a partial one. A new file is 0600 in
    a 0700 directory; an existing one keeps its mode. A symlink is followed."""
    target = path.resolve() if path.is_symlink() else path
    if not target.parent.is_dir():
        target.parent.mkdir(mode=0o700, parents=True)
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
