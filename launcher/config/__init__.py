"""Load platforms.ini and the platform profiles into validated, typed site objects.

`model` defines the site and profile objects, `sources` where sites and profiles come from
(the lookup rule), `profiles` reads and checks a profile, `overrides` applies a site
section's values onto its profile, `sites` loads one site, `listing` is `--mode sites`.
The names the rest of the launcher uses are re-exported here.
"""

from __future__ import annotations

from launcher.config.listing import describe_sites, site_records
from launcher.config.model import (
    CONFIG_DIR_ENV,
    EXPLICIT,
    JOBQUEUE_SECTIONS,
    SHIPPED,
    USER,
    Profile,
    Site,
)
from launcher.config.profiles import find_profile, jobqueue_keys, load_profile
from launcher.config.sites import load_site
from launcher.config.sources import (
    ConfigSources,
    config_help,
    find_config,
    read_sections,
    shipped_dir,
    site_names,
)

__all__ = [
    "CONFIG_DIR_ENV",
    "EXPLICIT",
    "JOBQUEUE_SECTIONS",
    "SHIPPED",
    "USER",
    "ConfigSources",
    "Profile",
    "Site",
    "config_help",
    "describe_sites",
    "find_config",
    "find_profile",
    "jobqueue_keys",
    "load_profile",
    "load_site",
    "read_sections",
    "shipped_dir",
    "site_names",
    "site_records",
]
