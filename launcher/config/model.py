"""What a site is: the typed site and profile objects, and the names, values and keys that
platforms.ini and the profiles may use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eoshared.batchsystem import BATCH_SYSTEMS, JobSpec

APP_NAME = "eo-hpc"
#: Overrides the user config directory (platforms.ini and the user's profiles).
CONFIG_DIR_ENV = "EOHPC_CONFIG_DIR"
INI_NAME = "platforms.ini"
#: The package whose data are the shipped profiles and example sites.
SHIPPED_PACKAGE = "launcher.platforms"
#: Where a site section or a profile came from.
SHIPPED, USER, EXPLICIT, BUILT_IN = "shipped", "user", "--config", "built-in"
LOCAL_UID = "local"
LOCAL_PLATFORM = "local"


@dataclass(frozen=True)
class EnvironmentSpec:
    """How the job activates its Python environment, and where `install` creates it."""

    manager: str = "venv"
    path: str | None = None
    python: str = "python3"
    modules: list[str] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JupyterSpec:
    """JupyterLab options."""

    app: str = "lab"
    root_dir: str | None = None
    args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InstallSpec:
    """What `install` puts into the environment."""

    project: str | None = None
    packages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    """A platform profile: config/platforms/<platform>.yaml."""

    name: str
    path: Path
    batch_system: str = "slurm"
    job: JobSpec = field(default_factory=JobSpec)
    environment: EnvironmentSpec = field(default_factory=EnvironmentSpec)
    jupyter: JupyterSpec = field(default_factory=JupyterSpec)
    install: InstallSpec = field(default_factory=InstallSpec)
    dask: dict[str, Any] = field(default_factory=dict)
    #: Batch mode as one allocation of this many nodes (``--nodes``) unless the command line
    #: says otherwise; None: the workers are jobs of their own.
    batch_nodes: int | None = None
    #: The site's MPI launcher (e.g. "mpirun"): one allocation's workers are then dask-mpi
    #: ranks it starts, one a node, instead of the batch system's own tool (srun, pbsdsh).
    batch_mpiexec: str | None = None


@dataclass(frozen=True)
class Site:
    """One [SITE] section of platforms.ini with its profile (site overrides applied)."""

    uid: str
    platform: str
    profile: Profile
    source: Path | None
    host: str | None = None
    user: str | None = None
    keypath: Path | None = None
    port: int | None = None
    proxy_jump: str | None = None

    @property
    def is_local(self) -> bool:
        """True for the built-in site that runs JupyterLab on this machine."""
        return self.platform == LOCAL_PLATFORM


#: ``batch_system:`` values; "local" runs JupyterLab on this machine.
BATCH_SYSTEM_NAMES = (*BATCH_SYSTEMS, "local")
#: dask-jobqueue's section of each batch system (as eoshared.batchsystem names them).
JOBQUEUE_SECTIONS = {name: cls.jobqueue_section for name, cls in BATCH_SYSTEMS.items()}
#: The profile key's older spelling, still read.
OLD_BATCH_SYSTEM_KEY = "scheduler"
MANAGERS = ("venv", "conda", "mamba", "current")
INI_CONNECTION_KEYS = ("platform", "host", "user", "keypath", "port", "proxy_jump")
INI_JOB_KEYS = ("partition", "account", "time", "cpus", "mem", "mem_per_cpu")
INI_ENV_KEYS = ("env_path", "python")
INI_JUPYTER_KEYS = ("notebook_dir",)
INI_BATCH_KEYS = ("batch_nodes", "batch_mpiexec")
#: platforms.ini keys that size the Dask worker jobs -> their keys of the batch system's
#: dask-jobqueue section.
INI_WORKER_KEYS = {
    "worker_cores": "cores",
    "worker_memory": "memory",
    "worker_processes": "processes",
    "worker_queue": "queue",
    "worker_walltime": "walltime",
}
INI_DASK_KEYS = ("dask_interface", *INI_WORKER_KEYS)
INI_KEYS = (
    INI_CONNECTION_KEYS
    + INI_JOB_KEYS
    + INI_ENV_KEYS
    + INI_JUPYTER_KEYS
    + INI_BATCH_KEYS
    + INI_DASK_KEYS
)
