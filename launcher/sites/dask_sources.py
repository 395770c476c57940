"""The Dask config the worker jobs really get, and the file each of its values came from.

Dask merges every YAML file of ``/etc/dask`` (``$DASK_ROOT_CONFIG``), of the environment's
``etc/dask``, of ``~/.config/dask`` and of ``$DASK_CONFIG``, in that order, a later file
winning. A job of the launcher sets ``DASK_CONFIG`` to its run directory, which holds the
profile's Dask config with the site's overrides, so that config wins over the user's own files
on the cluster; but a key the profile leaves unset (often ``queue``) still comes from them.
:func:`merged` gives each ``jobqueue.<section>.*`` value with its source; the user's files are
read with one command on the login node (:func:`read_cluster_files`, the text of
:data:`READ_FILES`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from eoshared.batchsystem import BATCH_SYSTEMS
from launcher.config.model import INI_WORKER_KEYS, Site
from launcher.config.sources import read_ini
from launcher.sites.jobscript import dask_config

#: Separates the files in the output of READ_FILES.
FILE_MARK = "--eohpc-dask-file--"
ENV_MARK = "--eohpc-dask-config-env--"
#: One shell command: the Dask config files of the user on the login node, each after a mark
#: line, then the user's own DASK_CONFIG. ``$1`` is the environment's prefix (may be empty).
READ_FILES = (
    'for d in "${DASK_ROOT_CONFIG:-/etc/dask}" "${1:+$1/etc/dask}" "$HOME/.config/dask"; do '
    '[ -n "$d" ] && [ -d "$d" ] || continue; '
    'for f in "$d"/*.yaml "$d"/*.yml "$d"/*.json; do '
    f'[ -f "$f" ] && [ -r "$f" ] && printf "%s %s\\n" {FILE_MARK} "$f" && cat "$f" && echo; '
    "done; done; "
    f'printf "%s %s\\n" {ENV_MARK} "${{DASK_CONFIG:-}}"'
)
NOT_READ = (
    "the cluster's own Dask files ($HOME/.config/dask, /etc/dask, the environment's etc/dask) "
    "are not included: dry-run makes no connection (-v connects and includes them)"
)


@dataclass(frozen=True)
class Layer:
    """One source of Dask config: where it is and its ``jobqueue.<section>`` values."""

    source: str
    values: dict[str, Any]
    on_cluster: bool = False


@dataclass
class Merged:
    """``jobqueue.<section>`` as the jobs get it: each key's value and the layer it came from;
    ``shadowed`` lists values a later layer replaced, ``notes`` what was not read."""

    section: str
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Layer] = field(default_factory=dict)
    shadowed: list[tuple[str, Any, Layer]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def key_text(self, key: str) -> str | None:
        """Where to change ``key`` when it came from a file of the user's on the cluster."""
        layer = self.sources.get(key)
        if layer is None or not layer.on_cluster:
            return None
        return f"'{key}' in {layer.source} on the cluster (your own Dask config)"

    def lines(self) -> list[str]:
        """Each value with its source, one comment line each."""
        prefix = f"jobqueue.{self.section}"
        out = [f"# {prefix} as the worker jobs get it (a later source wins):"]
        for key in sorted(self.values):
            out.append(f"#   {key}: {self.values[key]!r}  <- {self.sources[key].source}")
        for key, value, layer in self.shadowed:
            out.append(f"#   ({key}: {value!r} in {layer.source} is replaced)")
        out.extend(f"# note: {note}" for note in self.notes)
        return out


def _canonical(section: Any) -> dict[str, Any]:
    if not isinstance(section, dict):
        return {}
    return {str(k).replace("_", "-"): v for k, v in section.items()}


def section_of(config: Any, section: str) -> dict[str, Any]:
    """The ``jobqueue.<section>`` mapping of a parsed Dask config file ({} if none)."""
    if not isinstance(config, dict):
        return {}
    jobqueue = config.get("jobqueue")
    return _canonical(jobqueue.get(section)) if isinstance(jobqueue, dict) else {}


def parse_cluster_files(output: str, section: str) -> tuple[list[Layer], list[str]]:
    """The layers in the output of READ_FILES (in Dask's order) and notes about it."""
    layers: list[Layer] = []
    notes: list[str] = []
    files: list[tuple[str, list[str]]] = []
    for line in output.splitlines():
        if line.startswith(FILE_MARK + " "):
            files.append((line[len(FILE_MARK) + 1 :], []))
        elif line.startswith(ENV_MARK):
            own = line[len(ENV_MARK) :].strip()
            if own:
                notes.append(
                    f"your DASK_CONFIG={own} on the cluster is not read by the jobs: each job "
                    "sets DASK_CONFIG to its run directory"
                )
        elif files:
            files[-1][1].append(line)
    # Dask sorts the files of one directory by name.
    by_dir: dict[str, list[tuple[str, str]]] = {}
    for path, text in files:
        by_dir.setdefault(path.rsplit("/", 1)[0], []).append((path, "\n".join(text)))
    for entries in by_dir.values():
        for path, body in sorted(entries):
            try:
                values = section_of(yaml.safe_load(body), section)
            except yaml.YAMLError as exc:
                notes.append(f"{path} on the cluster is not valid YAML ({exc}); Dask fails on it")
                continue
            if values:
                layers.append(Layer(path, values, on_cluster=True))
    return layers, notes


def site_layers(site: Site, home: str | None) -> list[Layer]:
    """The run's own DASK_CONFIG (profile + site overrides), split by the file that set each
    value: the site's platforms.ini section, else the profile."""
    system = BATCH_SYSTEMS.get(site.profile.batch_system)
    if system is None:
        return []
    section = system.jobqueue_section
    values = section_of(dask_config(site.profile, home), section)
    ini = ini_values(site)
    own = section_of(site.profile.dask, section)
    where = f"{site.source} [{site.uid}]"
    from_ini: dict[str, str] = {dask: ini_key for ini_key, dask in INI_WORKER_KEYS.items()}
    from_ini["interface"] = "dask_interface"
    ini_layer: dict[str, Any] = {}
    profile_layer: dict[str, Any] = {}
    for key, value in values.items():
        ini_key = from_ini.get(key)
        inherited = {"queue": "partition", "account": "account"}.get(key)
        if ini_key and ini_key in ini:
            ini_layer[key] = (value, f"{where} {ini_key}")
        elif key in own:
            profile_layer[key] = value
        elif inherited and inherited in ini:
            ini_layer[key] = (value, f"{where} {inherited}")
        else:
            profile_layer[key] = value
    layers = [Layer(str(site.profile.path), profile_layer)]
    for key, (value, source) in ini_layer.items():
        layers.append(Layer(source, {key: value}))
    return layers


def ini_values(site: Site) -> dict[str, str]:
    """The site's own keys in its platforms.ini section ({} for a shipped site)."""
    if site.source is None:
        return {}
    parser = read_ini(site.source)
    return dict(parser[site.uid]) if parser.has_section(site.uid) else {}


def merged(site: Site, cluster: list[Layer] | None, home: str | None, notes: list[str]) -> Merged:
    """``jobqueue.<section>`` as the jobs get it: ``cluster`` (the user's files there, None when
    not read) under the site's own layers."""
    system = BATCH_SYSTEMS.get(site.profile.batch_system)
    result = Merged(system.jobqueue_section if system else "", notes=list(notes))
    if cluster is None:
        result.notes.append(NOT_READ)
    for layer in [*(cluster or []), *site_layers(site, home)]:
        for key, value in layer.values.items():
            if key in result.values and result.values[key] != value:
                result.shadowed.append((key, result.values[key], result.sources[key]))
            result.values[key], result.sources[key] = value, layer
    return result


def read_cluster_files(
    run: Callable[[str], tuple[int, str, str]], site: Site
) -> tuple[list[Layer], list[str]]:
    """The user's Dask config files on the login node, in one command (see READ_FILES)."""
    system = BATCH_SYSTEMS.get(site.profile.batch_system)
    prefix = site.profile.environment.path or ""
    code, out, err = run(f"sh -c {shlex.quote(READ_FILES)} sh {shlex.quote(prefix)}")
    if code != 0 or system is None:
        return [], [f"the cluster's Dask files could not be read: {err.strip() or code}"]
    return parse_cluster_files(out, system.jobqueue_section)
