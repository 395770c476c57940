"""The one SSH connection object and the tunnel's background problems, on the real sshd."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from eoshared.errors import RemoteCommandError
from launcher.config import load_site
from launcher.connection.ssh import SSHLink
from launcher.connection.tunnel import Tunnel, free_port
from tests.cluster import rig

pytestmark = pytest.mark.cluster


def _site_link(info: rig.ClusterInfo, tmp_path: Path) -> SSHLink:
    ini = tmp_path / "platforms.ini"
    keys = "".join(f"{k} = {v}\n" for k, v in info.ini_section().items())
    ini.write_text(f"[rigsite]\n{keys}")
    return SSHLink(load_site("rigsite", ini))


def test_link_runs_reads_writes_and_checks_over_one_connection(
    slurm_cluster: rig.ClusterInfo, tmp_path: Path
) -> None:
    with _site_link(slurm_cluster, tmp_path) as link:
        home = link.home()
        assert home.startswith("/") and link.home() == home
        remote = f"{home}/.eohpc-link-test"
        local = tmp_path / "payload"
        local.write_bytes(b"\x00binary\xffpayload")
        try:
            link.put(local, remote)
            assert link.read(remote) == b"\x00binary\xffpayload"
            assert link.read(remote, offset=7) == b"\xffpayload"
            assert link.check(f"stat -c %a {remote}").strip() == "600"
            assert link.run("cat", stdin="through stdin") == (0, "through stdin", "")
        finally:
            link.run(f"rm -f {remote}")
        assert link.read(remote) == b""  # a missing file reads as nothing yet
        with pytest.raises(RemoteCommandError, match="`exit 3` failed on"):
            link.check("exit 3")
        transport = link.transport()
        assert link.transport() is transport  # every call reused the one connection


def test_a_refused_forward_is_reported_as_one_line(
    slurm_cluster: rig.ClusterInfo, tmp_path: Path
) -> None:
    """The login node cannot connect to a closed port: the tunnel's background thread says
    so through on_problem instead of dropping the browser's connection silently."""
    problems: list[str] = []
    got = threading.Event()

    def on_problem(text: str) -> None:
        problems.append(text)
        got.set()

    closed = free_port()
    local = free_port()
    with (
        _site_link(slurm_cluster, tmp_path) as link,
        Tunnel(link, "127.0.0.1", closed, local, on_problem),
    ):
        with socket.create_connection(("127.0.0.1", local), timeout=5) as browser:
            browser.settimeout(30)
            assert browser.recv(1) == b""  # closed by the tunnel
        assert got.wait(30)
    assert len(problems) == 1
    assert f"127.0.0.1:{closed}" in problems[0] and "\n" not in problems[0]


def test_the_tunnel_reconnects_a_dropped_link(
    slurm_cluster: rig.ClusterInfo, tmp_path: Path
) -> None:
    problems: list[str] = []
    with (
        _site_link(slurm_cluster, tmp_path) as link,
        Tunnel(link, "127.0.0.1", free_port(), free_port(), problems.append),
    ):
        first = link.transport()
        first.close()
        deadline = time.monotonic() + 30
        while not link.alive and time.monotonic() < deadline:
            time.sleep(0.2)
        assert link.alive and link.transport() is not first
