"""install / run / uninstall on the single-node cluster from the launcher installed as a wheel
outside the checkout, with the site in the user's own platforms.ini (pip runs on the cluster:
slow)."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from pathlib import Path

import pytest

from launcher.config.distribution import BUILD_DIGEST_COMMAND, build_digest
from launcher.connection.readiness import api_status
from tests.cluster import rig
from tests.support.process_output import read_url
from tests.support.waiting import wait_until
from tests.support.wheel_install import Installed

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def remote(info: rig.ClusterInfo, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(info.ssh_command(command), capture_output=True, text=True)


def squeue(info: rig.ClusterInfo) -> str:
    cmd = rig.slurm_cmd(info, "squeue", "-h", "-u", info.user, "-o", "%i %T")
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def test_install_run_uninstall_from_the_wheel(
    clean_queue: rig.ClusterInfo, installed: Installed, tmp_path: Path
) -> None:
    info = clean_queue
    env_path = "~/eohpc-install-test/venv"
    config_dir = str(tmp_path / "config")  # this test's own user config directory
    installed = dataclasses.replace(
        installed, env={**installed.env, "EOHPC_CONFIG_DIR": config_dir}
    )
    keys = {**info.ini_section(), "env_path": env_path, "python": info.python}
    site = "[fresh]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
    subprocess.run(["mkdir", "-p", config_dir], check=True)
    with open(f"{config_dir}/platforms.ini", "w", encoding="utf-8") as handle:
        handle.write(site)
    remote(info, "rm -rf ~/eohpc-install-test ~/.eohpc/installs/fresh.json")
    try:
        first = installed.run("--uid", "fresh", "--mode", "install", timeout=1500)
        assert first.returncode == 0, first.stderr
        assert f"wheel file {installed.wheel}" in first.stderr, first.stderr
        # The cluster got the very wheel this laptop runs, and imports it.
        digest = hashlib.sha256(installed.wheel.read_bytes()).hexdigest()
        uploaded = remote(info, f"sha256sum ~/.eohpc/dist/{installed.wheel.name}")
        assert uploaded.stdout.split()[:1] == [digest], uploaded.stderr
        check = remote(
            info,
            f"{env_path}/bin/python -c 'import jupyterlab, dask_jobqueue, "
            "dask_labextension, jupyter_server_proxy, launcher, eotoolkit' && "
            "ls ~/.config/dask/eohpc-sandbox.yaml ~/.eohpc/installs/fresh.json",
        )
        assert check.returncode == 0, check.stderr
        # Both ends run the same build, and install says so.
        here = build_digest()
        there = remote(info, f"{env_path}/bin/python -c '{BUILD_DIGEST_COMMAND}'")
        assert there.stdout.strip() == here, there.stderr
        assert f"eo-hpc build {here}, the same as this machine's" in first.stderr
        again = installed.run("--uid", "fresh", "--mode", "install", timeout=900)  # idempotent
        assert again.returncode == 0, again.stderr
        assert "replacing build" not in again.stderr
        # A cluster holding other code under the same version number (an earlier install of a
        # changed checkout, as its manifest records it): run warns, install replaces it (pip
        # alone would keep what it has).
        stale = remote(
            info,
            f"f=$({env_path}/bin/python -c 'import eoshared.ledger as m; print(m.__file__)') "
            '&& echo "# an earlier build" >> "$f"',
        )
        assert stale.returncode == 0, stale.stderr
        changed = remote(info, f"{env_path}/bin/python -c '{BUILD_DIGEST_COMMAND}'").stdout.strip()
        assert changed != here
        manifest = remote(info, "cat ~/.eohpc/installs/fresh.json").stdout
        assert f'"build": "{here}"' in manifest
        rewrite = manifest.replace(f'"build": "{here}"', f'"build": "{changed}"')
        subprocess.run(
            info.ssh_command("cat > ~/.eohpc/installs/fresh.json"),
            input=rewrite,
            text=True,
            check=True,
        )

        proc = subprocess.Popen(
            [str(installed.venv / "bin" / "run-jupyter"), "--uid", "fresh", "--mode", "run",
             "--no-browser"],
            cwd=installed.workdir,
            env=installed.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        try:
            _, port, token = read_url(proc)
            assert api_status(port, token) == 200
            logs = installed.run("--uid", "fresh", "--mode", "logs", "-n", "200").stdout
            assert "eohpc-install-test/venv/bin/python" in logs
        finally:
            proc.send_signal(2)
            _, err = proc.communicate(timeout=60)
        assert f"holds eo-hpc build {changed}, this machine runs build {here}" in err, err
        assert wait_until(lambda: squeue(info) == "", 30)

        fixed = installed.run("--uid", "fresh", "--mode", "install", timeout=900)
        assert fixed.returncode == 0, fixed.stderr
        assert f"replacing build {changed}" in fixed.stderr, fixed.stderr
        assert f"eo-hpc build {here}, the same as this machine's" in fixed.stderr
        there = remote(info, f"{env_path}/bin/python -c '{BUILD_DIGEST_COMMAND}'")
        assert there.stdout.strip() == here

        gone = installed.run("--uid", "fresh", "--mode", "uninstall")
        assert gone.returncode == 0, gone.stderr
        left = remote(
            info, f"ls -d {env_path} ~/.config/dask/eohpc-sandbox.yaml ~/.eohpc/installs/fresh.json"
        )
        assert left.returncode != 0 and not left.stdout.strip()
        again = installed.run("--uid", "fresh", "--mode", "uninstall")
        assert again.returncode == 9 and "nothing to uninstall" in again.stderr
    finally:
        leftovers = (
            "~/eohpc-install-test ~/.eohpc/installs/fresh.json ~/.config/dask/eohpc-sandbox.yaml "
            f"~/.eohpc/dist/{installed.wheel.name}"
        )
        remote(info, f"rm -rf {leftovers}")
