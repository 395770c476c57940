"""What `--mode sites` prints: every site and profile, and where each came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from eoshared.batchsystem import BATCH_SYSTEMS
from eoshared.errors import ConfigError
from launcher.config.model import (
    BUILT_IN,
    EXPLICIT,
    INI_NAME,
    LOCAL_PLATFORM,
    LOCAL_UID,
    OLD_BATCH_SYSTEM_KEY,
    SHIPPED,
    USER,
)
from launcher.config.profiles import YAML_LOADER, find_profile
from launcher.config.sources import ConfigSources, as_sources, read_ini, read_sections, shipped_dir


def site_records(config: ConfigSources | Path | None) -> list[dict[str, Any]]:
    """Every known site: its platform, the file it came from (and that file's origin), and its
    profile's file and origin (an `error` instead when the profile is missing)."""
    sources = as_sources(config)
    sections = read_sections(sources)
    shipped_uids = set(read_ini(shipped_dir() / INI_NAME).sections())
    records: list[dict[str, Any]] = []
    for uid, (values, sites_file) in sections.items():
        platform = values.get("platform", "")
        records.append(
            {
                "uid": uid,
                "platform": platform,
                "host": values.get("host"),
                "origin": sites_file.origin,
                "file": str(sites_file.path),
                "overrides_shipped": sites_file.origin != SHIPPED and uid in shipped_uids,
                **_profile_record(platform, sources),
            }
        )
    if LOCAL_UID not in sections:
        records.append(
            {
                "uid": LOCAL_UID,
                "platform": LOCAL_PLATFORM,
                "host": None,
                "origin": BUILT_IN,
                "file": None,
                "overrides_shipped": False,
                **_profile_record(LOCAL_PLATFORM, sources),
            }
        )
    return records


def _profile_record(platform: str, sources: ConfigSources) -> dict[str, Any]:
    try:
        path, origin = find_profile(platform, sources)
    except ConfigError as exc:
        return {"profile": None, "profile_origin": None, "error": str(exc)}
    return {"profile": str(path), "profile_origin": origin, "error": None}


def profile_records(sources: ConfigSources) -> list[dict[str, str]]:
    """The profiles a site can name, in lookup order: each ``<platform>.yaml`` of the profile
    directories that is a profile (a mapping naming its batch system; other YAML files beside
    the sites file are not), the first of each name only."""
    records: dict[str, dict[str, str]] = {}
    for directory, origin in sources.profile_dirs():
        for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else ():
            if path.stem in records:
                continue
            try:
                data = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            if not isinstance(data, dict):
                continue
            system = data.get("batch_system", data.get(OLD_BATCH_SYSTEM_KEY))
            if not isinstance(system, str):
                continue
            cls = BATCH_SYSTEMS.get(system)
            name = cls.display_name if cls is not None else system
            records[path.stem] = {
                "name": path.stem,
                "batch_system": name,
                "origin": origin,
                "file": str(path),
            }
    return list(records.values())


def describe_sites(config: ConfigSources | Path | None, as_json: bool = False) -> int:
    """`--mode sites`: print every site, its platform and where it and its profile came from
    (the shipped examples, the user's file, --config's file); one JSON list with `as_json`."""
    sources = as_sources(config)
    records = site_records(sources)
    if as_json:
        print(json.dumps(records))
        return 0
    labels = {SHIPPED: "shipped", USER: "yours", EXPLICIT: "--config", BUILT_IN: "built-in"}
    width = max(len(r["uid"]) for r in records)
    pwidth = max(len(r["platform"]) for r in records)
    for r in records:
        shadow = "  (overrides the shipped example)" if r["overrides_shipped"] else ""
        site = f"site     {labels[r['origin']]:<9} {r['file'] or ''}".rstrip()
        print(f"{r['uid']:<{width}}  {r['platform']:<{pwidth}}  {site}{shadow}")
        if r["profile"]:
            profile = f"profile  {labels[r['profile_origin']]:<9} {r['profile']}"
        else:
            profile = f"profile  MISSING: {r['error']}"
        print(f"{'':<{width}}  {'':<{pwidth}}  {profile}")
    profiles = profile_records(sources)
    if profiles:
        print("\nprofiles (a site's platform names one; the first of a name wins):")
        nwidth = max(len(r["name"]) for r in profiles)
        bwidth = max(len(r["batch_system"]) for r in profiles)
        for r in profiles:
            print(
                f"  {r['name']:<{nwidth}}  {r['batch_system']:<{bwidth}}  "
                f"{labels[r['origin']]:<9} {r['file']}"
            )
    own = sources.own_file
    state = "" if own.is_file() else " (not created yet: --add-platform creates it)"
    print(f"\nsites file read with the shipped examples: {own}{state}")
    dirs = ", ".join(str(d) for d, _ in sources.profile_dirs())
    print(f"profiles <platform>.yaml looked up in: {dirs}")
    return 0
