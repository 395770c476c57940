"""The launcher installed like a user installs it: a wheel in a fresh venv, no source tree.

The venv sees this machine's packages (--system-site-packages) for the dependencies; the
wheel's `launcher` shadows the editable install of the checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from launcher.config.distribution import WHEEL, project_wheel, running_origin
from tests.support.process_output import url_of
from tests.support.waiting import wait_until
from tests.support.wheel_install import Installed, pip_install

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def test_wheel_carries_the_profiles(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    for name in ("platforms.ini", "local.yaml", "sandbox.yaml", "generic-slurm.yaml"):
        assert f"launcher/platforms/{name}" in names
    assert "launcher/templates/jupyter_wrapper.py" in names


def test_venv_runs_the_wheel_not_the_checkout(installed: Installed) -> None:
    site_packages = installed.venv.resolve()
    module = Path(installed.python("import launcher; print(launcher.__file__)"))
    assert module.resolve().is_relative_to(site_packages), module
    shipped = Path(
        installed.python("from launcher.config import shipped_dir; print(shipped_dir())")
    )
    assert shipped.resolve().is_relative_to(site_packages), shipped
    origin = installed.python(
        "from launcher.config.distribution import running_origin as o; "
        "r = o(); print(r.kind, r.location)"
    )
    assert origin == f"{WHEEL} {installed.wheel}"


def test_sites_come_from_the_shipped_file(installed: Installed) -> None:
    result = installed.run("--mode", "sites", "--json")
    assert result.returncode == 0, result.stderr
    records = {r["uid"]: r for r in json.loads(result.stdout)}
    assert set(records) == {"local", "sandbox"}
    for record in records.values():
        assert record["origin"] == "shipped"
        assert Path(record["file"]).resolve().is_relative_to(installed.venv.resolve())
        assert Path(record["profile"]).resolve().is_relative_to(installed.venv.resolve())


def test_local_run_serves_the_working_directory(installed: Installed) -> None:
    result = installed.run("--uid", "local", "--mode", "run", "--no-browser", "--detach")
    state_file = Path(installed.env["EOHPC_STATE_DIR"]) / "local.json"
    pid = json.loads(state_file.read_text())["pid"] if state_file.is_file() else 0
    try:
        assert result.returncode == 0, result.stderr
        _, port, token = url_of(result.stdout)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/contents", headers={"Authorization": f"token {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            listing = json.load(response)
        assert "hello.ipynb" in [item["name"] for item in listing["content"]]
        stopped = installed.run("--uid", "local", "--mode", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert wait_until(lambda: not _alive(pid), 15)
    finally:
        if pid and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_editable_install_finds_the_profiles(tmp_path: Path) -> None:
    """`pip install -e .` maps launcher.platforms onto config/platforms for importlib.resources."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "build.cfg").write_text(f"[egg_info]\negg_base = {scratch}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    subprocess.run(
        [*pip_install(venv), "-e", str(REPO)],
        check=True,
        env={**env, "DIST_EXTRA_CONFIG": str(scratch / "build.cfg")},
    )
    code = (
        "import importlib.resources as r, launcher; "
        "print(launcher.__file__); print(r.files('launcher.platforms'))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(REPO / "launcher" / "__init__.py"), str(REPO / "config" / "platforms")]


def test_checkout_wheel_has_no_stale_files(tmp_path: Path) -> None:
    """A module deleted since an earlier in-tree build stays out of the wheel, and building
    leaves no build/ or new *.egg-info in the tree (an editable install's own stays)."""

    def egg_infos() -> set[str]:
        return {p.name for p in REPO.iterdir() if p.name.endswith(".egg-info")}

    before = egg_infos()
    build = REPO / "build"
    made = not build.exists()
    stale = build / "lib" / "launcher" / "zz_deleted_module.py"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("")
    try:
        wheel = project_wheel(tmp_path, running_origin())
        egg_info = egg_infos() - before
    finally:
        if made:
            shutil.rmtree(build)
        else:
            stale.unlink()
    names = zipfile.ZipFile(wheel).namelist()
    assert "launcher/cli.py" in names
    assert not any("zz_deleted_module" in n for n in names)
    assert egg_info == set()


def _alive(pid: int) -> bool:
    """True while the process exists and is no zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_the_wheel_is_the_checkouts_build(installed: Installed) -> None:
    """The build digest compares both ends without building: the installed wheel has the
    digest of the checkout it was built from."""
    from launcher.config.distribution import build_digest

    result = installed.run("--version")
    assert result.returncode == 0, result.stderr
    assert f"(build {build_digest()}, " in result.stdout, result.stdout
    assert str(installed.venv) in result.stdout  # it runs from the wheel, not the checkout
