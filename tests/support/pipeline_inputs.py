"""What the pipeline tests give a pipeline on every rig: six scenes of which one is corrupt,
the command that refuses it, and inputs the cluster user owns."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.rig_sites import OtherLauncher

SCENES = [f"scene{i}" for i in range(1, 7)]
CORRUPT = "scene4"
#: The processing command: refuses an input that is not "DATA ...", writes its result.
CHECK = (
    "grep -q '^DATA' {input}/{scene} || {{ echo corrupt input {scene} >&2; exit 3; }}; "
    "tr a-z A-Z < {input}/{scene} > {output}/result.out"
)


def write_inputs(src: Path, corrupt: bool) -> None:
    """One input file per scene in ``src``; with ``corrupt``, the corrupt scene's is garbage."""
    for scene in SCENES:
        text = "GARBAGE\x00\n" if corrupt and scene == CORRUPT else f"DATA {scene}\n"
        (src / f"{scene}.txt").write_text(text)


def give_to_user(site: OtherLauncher, path: Path) -> None:
    """The cluster user of a PBS or HTCondor rig owns ``path`` (a path of its root as this
    machine sees it; chown inside the root, where the user exists)."""
    chroot = site.rig_module.RIG  # type: ignore[attr-defined]
    inside = "/" + str(path.relative_to(chroot.root))
    chroot.sh(f"chown -R {site.rig_module.CLUSTER_USER}: {inside}")  # type: ignore[attr-defined]


def chown_tree(path: Path, user: str) -> None:
    """``path`` and everything below it owned by ``user`` (of this machine: the SLURM rig)."""
    subprocess.run(["chown", "-R", f"{user}:", str(path)], check=True)
