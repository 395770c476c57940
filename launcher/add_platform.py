"""`--add-platform`: append a site section to platforms.ini interactively."""

from __future__ import annotations

import configparser
from pathlib import Path

from launcher.config import REPO_CONFIG_DIR, load_site, read_ini
from launcher.errors import ConfigError

QUESTIONS = (
    ("platform", "platform (profile name, e.g. generic-slurm, spider, snellius, delftblue)"),
    ("host", "login node host name or ~/.ssh/config alias"),
    ("user", "user name on the cluster (empty: from ~/.ssh/config)"),
    ("keypath", "private key file (empty: from ~/.ssh/config or the agent)"),
    ("partition", "partition for the Jupyter job (empty: the profile's)"),
    ("account", "account to charge (empty: none)"),
)


def add_platform(config: Path | None) -> int:
    """Ask for a site's keys, append the section, and validate it by loading it."""
    path = config or REPO_CONFIG_DIR / "platforms.ini"
    existing = read_ini(path if path.is_file() else None)
    uid = input("site name (--uid): ").strip()
    if not uid or uid in existing:
        raise ConfigError(f"site '{uid}' is empty or already in {path}; choose another name.")
    section = {key: input(f"{prompt}: ").strip() for key, prompt in QUESTIONS}
    parser = configparser.ConfigParser(interpolation=None)
    parser[uid] = {key: value for key, value in section.items() if value}
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n")
        parser.write(handle)
    load_site(uid, path)
    print(f"added [{uid}] to {path}; start it with: python run_jupyter.py --uid {uid} --mode run")
    return 0
