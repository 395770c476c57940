"""Which eo-hpc runs on this machine, and a wheel of exactly that version for the cluster.

`--mode install` puts on the cluster the version that runs here, whatever it came from:

- a source tree (a checkout installed with `pip install -e .`, or run from source with
  run_jupyter.py / PYTHONPATH): a wheel is built from that tree as it is now;
- a wheel file (`pip install eo_hpc-*.whl`; PEP 610's direct_url.json of the installed
  distribution names it): that file is uploaded, if it still exists unchanged;
- another direct URL (a directory installed without -e, a VCS URL, a remote archive): a wheel
  is built from the same URL (and commit);
- an index (`pip install eo-hpc`): `pip wheel --no-deps eo-hpc==VERSION` fetches that exact
  version here (its wheel, or one built from its sdist), so a cluster without internet access
  gets it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eoshared.errors import InstallError

# importlib.metadata and urllib.request are imported where they are used: every command
# reads source_tree() (config.shipped_dir), only install needs the rest.
if TYPE_CHECKING:
    from importlib import metadata

DIST_NAME = "eo-hpc"
SOURCE, WHEEL, URL, INDEX = "source tree", "wheel file", "URL", "index"
_NAME_LINE = re.compile(r'^\s*name\s*=\s*["\']eo-hpc["\']\s*$', re.MULTILINE)

#: Runs a command with an environment; returns (exit code, combined output). Tests replace it.
Runner = Callable[[list[str], dict[str, str]], tuple[int, str]]


def source_tree() -> Path | None:
    """The source tree this launcher package was imported from (it has the project's
    pyproject.toml next to launcher/), or None for an installed (wheel) copy."""
    package = Path(__file__).resolve().parents[1]  # launcher/
    root = package.parent
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if package.name == "launcher" and _NAME_LINE.search(text) else None


@dataclass(frozen=True)
class Origin:
    """Where the running eo-hpc came from: `kind` (SOURCE, WHEEL, URL, INDEX) and `location`
    (a tree, a wheel file, a pip requirement)."""

    kind: str
    location: str
    version: str | None = None

    def describe(self) -> str:
        """One phrase for messages, e.g. "wheel file /tmp/eo_hpc-0.1.0-py3-none-any.whl"."""
        version = f" (version {self.version})" if self.version else ""
        return f"{self.kind} {self.location}{version}"


def running_origin() -> Origin:
    """Where the eo-hpc running here came from (see the module docstring)."""
    tree = source_tree()
    if tree is not None:
        return Origin(SOURCE, str(tree))
    from importlib import metadata

    try:
        dist = metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError:
        raise InstallError(
            f"cannot tell which {DIST_NAME} runs here: it is neither installed (no "
            "distribution metadata) nor run from a source tree. Install it with pip, or set "
            "install.project in the platform profile."
        ) from None
    return origin_of(dist)


def origin_of(dist: metadata.Distribution) -> Origin:
    """Where an installed (not source-tree) distribution came from, by its direct_url.json."""
    version = dist.version
    text = dist.read_text("direct_url.json")
    direct = json.loads(text) if text else None
    if not isinstance(direct, dict) or not direct.get("url"):
        return Origin(INDEX, f"{DIST_NAME}=={version}", version)
    url = str(direct["url"])
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict):
        commit = vcs.get("commit_id") or vcs.get("requested_revision")
        at = f"@{commit}" if commit else ""
        return Origin(URL, f"{DIST_NAME} @ {vcs['vcs']}+{url}{at}", version)
    local = _file_path(url)
    if "dir_info" in direct:
        if local is not None and local.is_dir():
            kind = SOURCE if direct["dir_info"].get("editable") else URL
            return Origin(kind, str(local) if kind == SOURCE else f"{DIST_NAME} @ {url}", version)
        return Origin(INDEX, f"{DIST_NAME}=={version}", version)
    archive = direct.get("archive_info") or {}
    if local is None:
        return Origin(URL, f"{DIST_NAME} @ {url}", version)
    if local.is_file() and _hash_matches(local, str(archive.get("hash") or "")):
        if local.suffix == ".whl":
            return Origin(WHEEL, str(local), version)
        return Origin(URL, f"{DIST_NAME} @ {url}", version)
    return Origin(INDEX, f"{DIST_NAME}=={version}", version)


def _file_path(url: str) -> Path | None:
    import urllib.parse
    import urllib.request

    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(urllib.request.url2pathname(parsed.path))


def _hash_matches(path: Path, recorded: str) -> bool:
    """True if the file still has the hash pip recorded ("algo=hex"), or none was recorded."""
    algorithm, _, expected = recorded.partition("=")
    if not expected or algorithm not in hashlib.algorithms_available:
        return True
    return hashlib.new(algorithm, path.read_bytes()).hexdigest() == expected


def _run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def project_wheel(dest: Path, origin: Origin | None = None, run: Runner = _run) -> Path:
    """A wheel of the eo-hpc running here (or of `origin`), in `dest` unless it is the
    wheel file it was installed from."""
    origin = origin or running_origin()
    if origin.kind == WHEEL:
        return Path(origin.location)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest)]
    with tempfile.TemporaryDirectory(prefix="eohpc-build-") as scratch:
        # setuptools builds a source tree in place, in its build/ directory, and packs files
        # left there by earlier builds (modules deleted since) into the wheel: a fresh build
        # directory (read from DIST_EXTRA_CONFIG) keeps the wheel to what the tree holds now,
        # and the tree free of build/ and *.egg-info.
        config = Path(scratch) / "build.cfg"
        config.write_text(
            f"[build]\nbuild_base = {scratch}/build\n[egg_info]\negg_base = {scratch}\n",
            encoding="utf-8",
        )
        env = {**os.environ, "DIST_EXTRA_CONFIG": str(config)}
        code, output = run([*pip, origin.location], env)
    wheels = sorted(dest.glob("*.whl"))
    if code != 0 or len(wheels) != 1:
        fix = (
            "Check the index (pip config) or pass a reachable one"
            if origin.kind == INDEX
            else "Fix the build error above"
        )
        raise InstallError(
            f"making the {DIST_NAME} wheel from the {origin.describe()} failed: {output} "
            f"{fix}, or set install.project in the platform profile."
        )
    wheel = wheels[0]
    if origin.version and wheel_version(wheel) != origin.version:
        raise InstallError(
            f"{wheel.name} is not version {origin.version}, the one running here "
            f"(from the {origin.describe()}). Set install.project in the platform profile."
        )
    return wheel


#: The packages whose files make a build (as installed: launcher.platforms is launcher/platforms).
BUILD_PACKAGES = ("launcher", "launcher.platforms", "eoshared", "eotoolkit")


def build_digest() -> str:
    """A digest of the eo-hpc code importable here: every file of BUILD_PACKAGES (bytecode
    caches left out), by its path as installed. A checkout and the wheel built from it have
    the same digest, so the laptop and a cluster environment can be compared without a build."""
    from importlib.util import find_spec

    digest = hashlib.sha256()
    files: dict[str, Path] = {}
    for name in BUILD_PACKAGES:
        tree = source_tree()
        if tree is not None and name == "launcher.platforms":  # run from a checkout
            root = tree / "config" / "platforms"
        else:
            spec = find_spec(name)  # locates the package without running it (eotoolkit)
            if spec is None or not spec.submodule_search_locations:
                raise InstallError(f"package {name} is not importable here")
            root = Path(next(iter(spec.submodule_search_locations)))
        prefix = name.replace(".", "/")
        nested = {n.rpartition(".")[2] for n in BUILD_PACKAGES if n.startswith(f"{name}.")}
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if rel.parts[0] in nested or "__pycache__" in rel.parts or path.suffix == ".pyc":
                continue
            if path.is_file():
                files[f"{prefix}/{rel.as_posix()}"] = path
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name].read_bytes()).digest())
    return digest.hexdigest()[:16]


#: Prints build_digest() of the environment it runs in (``python -c`` on the cluster).
BUILD_DIGEST_COMMAND = (
    "from launcher.config.distribution import build_digest; print(build_digest())"
)


def wheel_version(wheel: Path) -> str:
    """The version field of a wheel's file name (name-version-...whl)."""
    parts = wheel.name.split("-")
    return parts[1] if len(parts) >= 5 else ""
