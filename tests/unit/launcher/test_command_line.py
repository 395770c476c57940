"""The command line as a terminal program: values checked before anything happens, --version,
a closed pipe, and modes that have no meaning on the local site."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from launcher import cli

RUN_JUPYTER = Path(__file__).resolve().parents[3] / "run_jupyter.py"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--local-port", "99999"], "--local-port: 99999 is not a port number (1 to 65535)"),
        (["--local-port", "0"], "--local-port: 0 is not a port number"),
        (["--local-port", "http"], "--local-port: 'http' is not a port number"),
        (["--timeout", "-5"], "--timeout: -5 is not a duration > 0"),
        (["--timeout", "0"], "--timeout: 0 is not a duration > 0"),
        (["--timeout", "nan"], "--timeout: nan is not a duration > 0"),
        (["--walltime-warning", "-3"], "--walltime-warning: -3 is not a duration >= 0"),
        (["--reconnect-for", "inf"], "--reconnect-for: inf is not a duration >= 0"),
        (["--workers", "0"], "--workers: 0 is not a whole number >= 1"),
        (["--max-worker-jobs", "-1"], "--max-worker-jobs: -1 is not a whole number >= 1"),
        (["-n", "two"], "--lines: 'two' is not a whole number"),
    ],
)
def test_bad_values_are_refused_by_the_parser(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--uid", "local", "--mode", "dry-run", *args])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_good_values_pass() -> None:
    args = cli.build_parser().parse_args(
        ["--local-port", "65535", "--timeout", "0.5", "--walltime-warning", "0", "--workers", "3"]
    )
    assert (args.local_port, args.timeout, args.walltime_warning, args.workers) == (
        65535,
        0.5,
        0.0,
        3,
    )


def test_version_on_standard_output() -> None:
    out = subprocess.run(
        [sys.executable, str(RUN_JUPYTER), "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.startswith("eo-hpc ") and "(build " in out.stdout


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # far more output than a pipe holds, so the reader's going away is certain to be seen
    ini = tmp_path / "platforms.ini"
    ini.write_text(
        "".join(f"[site{n}]\nplatform = generic-slurm\nhost = h{n}\n" for n in range(2000))
    )
    command = (
        f"{sys.executable} {RUN_JUPYTER} --config {ini} --mode sites | head -n 1 >/dev/null; "
        'echo "status ${PIPESTATUS[0]}"'
    )
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert out.stderr == "", out.stderr
    assert out.stdout.strip() == f"status {cli.BROKEN_PIPE_STATUS}", out.stdout


@pytest.mark.parametrize("mode", ["install", "uninstall"])
def test_install_modes_on_the_local_site(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--uid", "local", "--mode", mode]) == 9
    err = capsys.readouterr().err
    assert f"--mode {mode} prepares a cluster's environment" in err
    assert "pip install 'eo-hpc[jupyter]'" in err and "env_path" not in err
