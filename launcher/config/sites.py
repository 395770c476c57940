"""One site: its platforms.ini section checked, its profile loaded and the section's
overrides applied."""

from __future__ import annotations

from pathlib import Path

from eoshared.errors import ConfigError, UnknownSiteError
from launcher.config.model import INI_KEYS, LOCAL_PLATFORM, LOCAL_UID, Site
from launcher.config.overrides import apply_overrides, ini_int
from launcher.config.profiles import load_profile
from launcher.config.sources import ConfigSources, as_sources, read_sections, site_names
from launcher.config.spelling import did_you_mean


def load_site(uid: str, config: ConfigSources | Path | None = None) -> Site:
    """Load and validate one site and its profile (the lookup rule: launcher.config.sources)."""
    sources = as_sources(config)
    sections = read_sections(sources)
    if uid not in sections:
        if uid == LOCAL_UID:
            return Site(
                uid=uid,
                platform=LOCAL_PLATFORM,
                profile=load_profile(LOCAL_PLATFORM, sources),
                source=None,
            )
        names = site_names(sources)
        where = " and ".join(str(f.path) for f in reversed(sources.files()))
        raise UnknownSiteError(
            f"unknown site '{uid}'{did_you_mean(uid, names)} in {where}. Known sites: "
            f"{', '.join(names)}. Add a section with --add-platform or pick one of these."
        )
    values, sites_file = sections[uid]
    return build_site(uid, values, sites_file.path, sources)


def build_site(
    uid: str, values: dict[str, str], path: Path, config: ConfigSources | Path | None
) -> Site:
    """Validate one site section (`values`, from the file `path`) and load its profile."""
    src = f"{path} [{uid}]"
    for key in values:
        if key not in INI_KEYS:
            raise ConfigError(
                f"{src}: unknown key '{key}'{did_you_mean(key, INI_KEYS)}. "
                f"Allowed keys: {', '.join(INI_KEYS)}."
            )
    platform = values.get("platform")
    if not platform:
        raise ConfigError(f"{src}: missing key 'platform'. Add e.g. 'platform = generic-slurm'.")
    if platform != LOCAL_PLATFORM and not values.get("host"):
        raise ConfigError(
            f"{src}: missing key 'host'. Add the login node (or a ~/.ssh/config alias)."
        )
    profile = apply_overrides(load_profile(platform, config), values, src)
    return Site(
        uid=uid,
        platform=platform,
        profile=profile,
        source=path,
        host=values.get("host"),
        user=values.get("user"),
        keypath=Path(values["keypath"]).expanduser() if values.get("keypath") else None,
        port=ini_int(values, "port", src),
        proxy_jump=values.get("proxy_jump"),
    )
