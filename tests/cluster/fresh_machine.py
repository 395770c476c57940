"""Run CI as on a fresh machine: ``.ci/run`` in a fresh clone, with the state of earlier runs out
of the way.

    python -m tests.cluster.fresh_machine [--warm] [--delete] [--repo PATH]

As root, from a checkout. It stops any test rig still up, then (unless ``--warm``) removes the
rigs' cluster users with their homes and moves aside what earlier runs left on this machine:
the rig roots (SLURM state, the PBS and HTCondor Debian roots, the Ceph store), the cluster
venv, the STAC API's state and pip's cache, into ``/var/tmp/eo-fresh-aside/<time>/`` (with
``--delete``: removed). Debian packages installed by earlier runs stay; a new machine installs
them in the first minutes of a run. It then clones the repository's committed ``HEAD`` into a
temporary folder with a read-only copy of ``../shared`` beside it, runs ``CI=true bash .ci/run``
there with no standard input, as CI does, and prints its wall time and exit status (its output
goes to the terminal and to ``ci.log`` in the clone's parent folder, which is kept).

Like CI, ``.ci/run`` installs the clone in editable mode into the Python it runs with: install
your checkout again afterwards (``python -m pip install -e ".[dev]"``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.cluster import htcondor_rig, pbs_rig, rig
from tests.cluster.chroot import PIP_CACHE
from tests.s3 import rig as s3_rig
from tests.stacapi import server as stacapi_server

ASIDE_ROOT = Path("/var/tmp/eo-fresh-aside")


def stop_rigs() -> None:
    """Bring down every test rig and server that is still up."""
    for topology in ("single", "netns"):
        if rig.is_up(topology):
            rig.down(topology)
    for module in (pbs_rig, htcondor_rig):
        if module.is_up():
            module.down()
    if s3_rig.running() is not None:
        s3_rig.stop()
    if stacapi_server.read_state() is not None:
        stacapi_server.stop()


def earlier_state() -> list[Path]:
    """What earlier runs leave on a machine: rig roots, the cluster venv, servers' state, caches."""
    return [rig.RIG_ROOT, rig.VENV_ROOT.parent, stacapi_server.DEFAULT_DIR, PIP_CACHE]


def mounts_below(path: Path) -> list[str]:
    """Mount points below ``path`` (a rig root still mounted must not be moved)."""
    prefix = f"{path.resolve()}/"
    with open("/proc/mounts") as fh:
        points = [line.split()[1] for line in fh]
    return [p for p in points if p.startswith(prefix)]


def remove_users() -> None:
    """Remove the SLURM rig's cluster users with their homes, as a new machine has none."""
    for name in (rig.CLUSTER_USER, rig.OTHER_USER):
        subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)


def clear_earlier_state(delete: bool) -> Path | None:
    """Remove the users and move (or delete) the earlier runs' state; return where it went."""
    busy = [m for path in earlier_state() if path.exists() for m in mounts_below(path)]
    if busy:
        sys.exit(f"still mounted below the rig roots (stop the rigs first): {', '.join(busy)}")
    remove_users()
    aside = None if delete else ASIDE_ROOT / time.strftime("%Y%m%d-%H%M%S")
    for path in earlier_state():
        if not path.exists():
            continue
        if aside is None:
            shutil.rmtree(path)
            print(f"removed {path}")
        else:
            target = aside / str(path).lstrip("/").replace("/", "_")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(target))
            print(f"moved {path} to {target}")
    return aside


def fresh_clone(repo: Path) -> Path:
    """A clone of ``repo``'s committed HEAD with a read-only copy of ``../shared`` beside it."""
    base = Path(tempfile.mkdtemp(prefix="eo-fresh-ci-"))
    subprocess.run(["git", "clone", "--quiet", str(repo), str(base / "main")], check=True)
    shared = repo.parent / "shared"
    if shared.is_dir():
        shutil.copytree(shared, base / "shared", symlinks=True)
        subprocess.run(["chmod", "-R", "a-w", str(base / "shared")], check=True)
    return base


def run_ci(clone: Path, log: Path) -> tuple[int, float]:
    """``CI=true bash .ci/run`` in ``clone`` with no standard input; its status and wall time."""
    env = {**os.environ, "CI": "true"}
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", ".ci/run"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            out.write(line)
        status = proc.wait()
    return status, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", action="store_true", help="keep users, roots and caches")
    parser.add_argument("--delete", action="store_true", help="delete, not move aside")
    parser.add_argument("--repo", type=Path, default=rig.REPO_ROOT, help="the checkout to clone")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run it as root, as CI runs (it starts the test rigs)")
    stop_rigs()
    aside = None if args.warm else clear_earlier_state(args.delete)
    base = fresh_clone(args.repo.resolve())
    log = base / "ci.log"
    status, seconds = run_ci(base / "main", log)
    shutil.rmtree(base / "main", ignore_errors=True)
    kind = "warm" if args.warm else "cold"
    print(f"\n{kind} run of .ci/run: exit status {status} after {seconds / 60:.1f} min; log: {log}")
    if aside is not None:
        print(f"the earlier state is in {aside} (remove it when no longer needed)")
    return status


if __name__ == "__main__":
    sys.exit(main())
