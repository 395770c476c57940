"""Where the sites and the profiles come from, and reading platforms.ini.

Where sites and profiles come from (one rule; config_help() says it in `--help`):

- Sites: the sections of one file, `--config PATH` if given, else the user's
  `platforms.ini` in the user config directory, merged with the shipped example sites
  (`local`, `sandbox`): a section of that file wins over a shipped one of the same name.
- Profiles: `<platform>.yaml` next to `--config`'s file, then in the user config directory,
  then among the shipped profiles: the first found wins, so a user profile overrides a
  shipped one by name.

The shipped profiles and example sites are the package data `launcher.platforms` (the
repository's config/platforms, mapped by pyproject.toml); the user config directory is
platformdirs' (`~/.config/eo-hpc` on Linux), or $EOHPC_CONFIG_DIR.
"""

from __future__ import annotations

import configparser
import functools
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs

from eoshared.errors import ConfigError
from launcher.config.distribution import source_tree
from launcher.config.model import (
    APP_NAME,
    CONFIG_DIR_ENV,
    EXPLICIT,
    INI_NAME,
    LOCAL_UID,
    SHIPPED,
    SHIPPED_PACKAGE,
    USER,
)


def user_config_dir() -> Path:
    """The user's config directory: $EOHPC_CONFIG_DIR, else platformdirs' for eo-hpc."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or platformdirs.user_config_dir(APP_NAME))


@functools.lru_cache(maxsize=1)
def shipped_dir() -> Path:
    """The directory of the shipped profiles and example sites (package data).

    importlib.resources finds the package `launcher.platforms`: launcher/platforms/ in a
    wheel, the repository's config/platforms in an editable install. When this launcher
    package was imported straight from a source tree that is not the installed one
    (run_jupyter.py in a clone, PYTHONPATH), the profiles of that same tree are used, so
    the code and its profiles always come from one place.
    """
    try:
        found = resources.files(SHIPPED_PACKAGE)
    except ModuleNotFoundError:
        found = None
    tree = source_tree()
    own = tree / "config" / "platforms" if tree is not None else None
    if (
        own is not None
        and own.is_dir()
        and not (isinstance(found, Path) and _same_path(found, own))
    ):
        return own  # launcher runs from a source tree that is not the installed one
    if not isinstance(found, Path) or not (found / INI_NAME).is_file():
        raise ConfigError(
            f"the shipped platform profiles (package data of {SHIPPED_PACKAGE}) are missing "
            "from this installation. Reinstall eo-hpc."
        )
    return found


def _same_path(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


@dataclass(frozen=True)
class SitesFile:
    """A platforms.ini that sites are read from, and where it came from."""

    path: Path
    origin: str  # SHIPPED, USER or EXPLICIT


@dataclass(frozen=True)
class ConfigSources:
    """Where the sites and the profiles come from: see this module's docstring.

    `explicit` is --config's file; without it the user's platforms.ini is read (if it exists).
    """

    explicit: Path | None = None

    @property
    def own_file(self) -> Path:
        """The file whose sections win (and that --add-platform writes): --config's file,
        else the user's platforms.ini (which need not exist yet)."""
        return self.explicit if self.explicit is not None else user_config_dir() / INI_NAME

    @property
    def own_origin(self) -> str:
        """EXPLICIT with --config, else USER."""
        return EXPLICIT if self.explicit is not None else USER

    def files(self) -> list[SitesFile]:
        """The platforms.ini files read, lowest precedence first."""
        shipped = SitesFile(shipped_dir() / INI_NAME, SHIPPED)
        own = self.own_file
        if own.is_file() and not _same_path(own, shipped.path):
            return [shipped, SitesFile(own, self.own_origin)]
        return [shipped]

    def profile_dirs(self) -> list[tuple[Path, str]]:
        """The directories searched for <platform>.yaml, first match wins, with their origin."""
        dirs: list[tuple[Path, str]] = []
        if self.explicit is not None:
            dirs.append((self.explicit.parent, EXPLICIT))
        dirs += [(user_config_dir(), USER), (shipped_dir(), SHIPPED)]
        unique: list[tuple[Path, str]] = []
        for directory, origin in dirs:
            same = [i for i, (d, _) in enumerate(unique) if _same_path(d, directory)]
            if same:  # listed twice (--config in the shipped directory): the later rank holds
                del unique[same[0]]
            unique.append((directory, origin))
        return unique


def config_help() -> str:
    """The lookup rule in one paragraph, for `--help` of --config."""
    return (
        "platforms.ini to read instead of your own "
        f"({user_config_dir() / INI_NAME}; ${CONFIG_DIR_ENV} moves the directory). Its sites "
        "are merged with the shipped example sites (local, sandbox); a section of the file "
        "wins over a shipped one of the same name. A profile <platform>.yaml is looked up next "
        "to the file, then in your config directory, then among the shipped profiles. "
        "--mode sites shows what was found where."
    )


def as_sources(config: ConfigSources | Path | None) -> ConfigSources:
    """ConfigSources from find_config's result, an explicit platforms.ini path, or None
    (the default lookup)."""
    if isinstance(config, ConfigSources):
        return config
    return ConfigSources(explicit=config)


def find_config(explicit: Path | None) -> ConfigSources:
    """Return where sites and profiles come from; --config's file must exist."""
    if explicit is not None and not explicit.is_file():
        raise ConfigError(f"{explicit}: no such file. Pass an existing platforms.ini to --config.")
    return ConfigSources(explicit=explicit)


def ini_parser() -> configparser.ConfigParser:
    """The parser of platforms.ini: no interpolation; ` ; comment` may end a line."""
    return configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))


def read_ini(path: Path | None) -> configparser.ConfigParser:
    """Parse platforms.ini (an empty parser when path is None)."""
    parser = ini_parser()
    if path is not None:
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ConfigError(f"{path}: cannot parse ({exc}). Fix the INI syntax.") from exc
    return parser


def read_sections(
    config: ConfigSources | Path | None,
) -> dict[str, tuple[dict[str, str], SitesFile]]:
    """Every site section with the file it came from: the winning file's sections in its
    order, then the shipped ones it does not override."""
    sections: dict[str, tuple[dict[str, str], SitesFile]] = {}
    for sites_file in reversed(as_sources(config).files()):
        parser = read_ini(sites_file.path)
        for uid in parser.sections():
            sections.setdefault(uid, (dict(parser[uid]), sites_file))
    return sections


def site_names(config: ConfigSources | Path | None) -> list[str]:
    """Return the known site uids (the built-in `local` always among them)."""
    names = list(read_sections(config))
    return names if LOCAL_UID in names else [*names, LOCAL_UID]
