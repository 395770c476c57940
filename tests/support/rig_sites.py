"""The launcher pointed at each batch system's rig (SLURM's two-namespace rig, the PBS and
HTCondor rigs in Debian roots of their own), with what tests do to the rig in that system's own
commands: list and remove the user's jobs, find a running worker job, stop and start the login
node's sshd."""

from __future__ import annotations

import importlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import rig
from tests.support.launcher_run import REPO, Launcher, launcher_env
from tests.support.waiting import wait_until

#: The PBS and HTCondor rigs, each with the marker that selects its tests.
SYSTEMS = [
    pytest.param("pbs", marks=pytest.mark.pbs, id="pbs"),
    pytest.param("htcondor", marks=pytest.mark.htcondor, id="htcondor"),
]
#: Every batch system with a rig: SLURM's is the two-namespace topology (marker ``netns``).
BATCH_SYSTEMS = [pytest.param("slurm", marks=pytest.mark.netns, id="slurm"), *SYSTEMS]
#: The profiles of config/platforms (each rig's site names one).
PROFILES = REPO / "config" / "platforms"


class RigSite(Launcher):
    """The launcher on one rig. Subclasses give the rig's own commands."""

    system = ""

    def profile_variant(self, name: str, edit: dict[str, str]) -> None:
        """A copy of the rig's profile with text replacements, as the site ``name``."""
        assert self.info is not None
        platform = self.info.ini_section()["platform"]
        text = (PROFILES / f"{platform}.yaml").read_text()
        for old, new in edit.items():
            assert old in text, old
            text = text.replace(old, new)
        (self.ini.parent / f"{name}.yaml").write_text(text)
        self.write_site(
            name, **{**self.info.ini_section(), "platform": name}, env_path=str(self.info.venv)
        )

    def queue(self) -> str:
        """The cluster user's unfinished jobs, one per line."""
        raise NotImplementedError

    def cancel(self, job_id: str) -> None:
        """Remove a job with the batch system's own command."""
        raise NotImplementedError

    def jobs_gone(self, ids: list[str], timeout: float = 30) -> bool:
        """True once none of ``ids`` is queued any more."""
        raise NotImplementedError

    def running_worker(self) -> str:
        """The id of a running Dask worker job of the user, or ""."""
        raise NotImplementedError

    def sshd_pid_file(self) -> Path:
        """The pid file of the login node's sshd."""
        raise NotImplementedError

    def login_netns(self) -> str | None:
        """The network namespace of the login node's sshd (None: this machine's)."""
        raise NotImplementedError

    def start_sshd(self) -> None:
        """Start the login node's sshd as the rig does (no-op while it runs)."""
        raise NotImplementedError


class SlurmSite(RigSite):
    """The launcher on SLURM's two-namespace rig. Other engineers' tests may share that rig, so
    a test looks at its own jobs (by id), not at the whole queue."""

    system = "slurm"

    def queue(self) -> str:
        return self.squeue()

    def cancel(self, job_id: str) -> None:
        assert self.info is not None
        rig.run(rig.slurm_cmd(self.info, "scancel", job_id))

    def jobs_gone(self, ids: list[str], timeout: float = 30) -> bool:
        info = self.info
        assert info is not None

        def gone() -> bool:
            if not ids:
                return True
            cmd = rig.slurm_cmd(info, "squeue", "-h", "-o", "%i", "-j", ",".join(ids))
            proc = subprocess.run(cmd, capture_output=True, text=True)
            return not proc.stdout.split()

        return wait_until(gone, timeout)

    def running_worker(self) -> str:
        info = self.info
        assert info is not None
        cmd = rig.slurm_cmd(info, "squeue", "-h", "-u", info.user, "-t", "R", "-o", "%i %j")
        lines = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()
        return next((ln.split()[0] for ln in lines if ln.endswith("-workers")), "")

    def sshd_pid_file(self) -> Path:
        assert self.info is not None
        return rig.sshd_pid_file(self.info.topology)

    def login_netns(self) -> str | None:
        assert self.info is not None
        return rig.NETNS_LOGIN if self.info.topology == "netns" else None

    def start_sshd(self) -> None:
        info = self.info
        assert info is not None
        rig.start_sshd(info.topology, info.login_hostname, info.slurm_conf)


def slurm_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SlurmSite]:
    """The launcher on the two-namespace SLURM rig, its state and config directories its own;
    every job of the rig's users is cancelled after the test (``clean_netns_queue``)."""
    info: rig.ClusterInfo = request.getfixturevalue("clean_netns_queue")
    venv: str = request.getfixturevalue("cluster_venv")
    site = SlurmSite(tmp_path / "platforms.ini", launcher_env(tmp_path), info)
    site.write_site("sandbox", **info.ini_section(), env_path=venv)
    yield site


class OtherLauncher(RigSite):
    """The launcher on the PBS or HTCondor rig (``rig_module``: tests.cluster.pbs_rig or
    tests.cluster.htcondor_rig). The rig is this test session's alone: ``queue()`` lists all of
    the user's jobs there, and the test leaves none."""

    rig_module: object = None

    @property
    def system(self) -> str:  # type: ignore[override]
        assert self.info is not None
        return str(self.info.extra["batch_system"])

    def queue(self) -> str:
        return self.rig_module.queue()  # type: ignore[attr-defined]

    def cancel(self, job_id: str) -> None:
        self.rig_module.remove_job(job_id)  # type: ignore[attr-defined]

    def jobs_gone(self, ids: list[str], timeout: float = 60) -> bool:
        """True once the user has no job left at all (``ids`` among them)."""
        return wait_until(lambda: self.queue() == "", timeout)

    def running_worker(self) -> str:
        jobs = self.rig_module.job_names()  # type: ignore[attr-defined]
        return next(
            (i for i, (name, state) in jobs.items()
             if name.endswith("-workers") and state in ("R", "RUNNING")), "",
        )  # fmt: skip

    def sshd_pid_file(self) -> Path:
        return self.rig_module.RIG.sshd_pid  # type: ignore[attr-defined,no-any-return]

    def login_netns(self) -> str | None:
        return self.rig_module.RIG.netns  # type: ignore[attr-defined,no-any-return]

    def start_sshd(self) -> None:
        self.rig_module.RIG.start_sshd()  # type: ignore[attr-defined]


def launcher_on(
    request: pytest.FixtureRequest, system: str, tmp_path: Path
) -> Iterator[OtherLauncher]:
    """The launcher pointed at one rig; asserts that the test leaves none of its user's jobs."""
    info: rig.ClusterInfo = request.getfixturevalue(f"{system}_cluster")
    module = importlib.import_module(f"tests.cluster.{system}_rig")
    launcher = OtherLauncher(tmp_path / "platforms.ini", launcher_env(tmp_path), info)
    launcher.rig_module = module
    launcher.write_site("sandbox", **info.ini_section(), env_path=info.venv)
    assert launcher.queue() == "", "jobs of the test user were queued before the test"
    try:
        yield launcher
        assert wait_until(lambda: launcher.queue() == "", 60), launcher.queue()
    finally:
        module.cancel_all_jobs()
