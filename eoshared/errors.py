"""Errors the launcher reports to the user: each message names the cause and the fix."""

from __future__ import annotations


class LauncherError(Exception):
    """Base class of every error the command line prints without a traceback."""

    exit_code = 1


class ClusterSiteError(LauncherError):
    """A mode, option or job that needs a batch system was asked of the local site."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs a cluster site; the local site has no batch system.")


class ConfigError(LauncherError):
    """platforms.ini or a platform profile is missing, malformed or invalid."""

    exit_code = 2


class UnknownSiteError(ConfigError):
    """The requested --uid has no section in platforms.ini."""


class SSHError(LauncherError):
    """The SSH connection to a site's login node failed."""

    exit_code = 3


class LinkLostError(SSHError):
    """The login node stayed unreachable for longer than the reconnect bound."""


class RemoteCommandError(SSHError):
    """A command on the login node failed."""


class KeyFileError(SSHError):
    """The private key file is missing, unreadable or has open permissions."""


class HostUnreachableError(SSHError):
    """The login node did not answer (DNS, refused connection, timeout)."""


class AuthenticationError(SSHError):
    """The login node refused the credentials."""


class BatchSystemError(LauncherError):
    """The batch system rejected a command (submit, status, cancel)."""

    exit_code = 4


class JobFailedError(BatchSystemError):
    """The Jupyter job ended before Jupyter was ready."""


class JupyterTimeoutError(LauncherError):
    """Jupyter did not become ready within --timeout after the job started."""

    exit_code = 5


class PortInUseError(LauncherError):
    """The requested local port is already taken."""

    exit_code = 6


class SessionExistsError(LauncherError):
    """A session is already live for the site."""

    exit_code = 7


class NoSessionError(LauncherError):
    """No saved session exists for the site."""

    exit_code = 8


class InstallError(LauncherError):
    """Creating or removing the cluster-side environment failed."""

    exit_code = 9


class RequestFitError(BatchSystemError):
    """A job asks for more than any node of its partition holds, or for no partition there is."""
