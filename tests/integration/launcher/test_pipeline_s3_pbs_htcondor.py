"""--mode pipeline on the PBS and HTCondor rigs with the data in the S3 rig (Ceph RGW).

The same six real COGs as on SLURM (tests/integration/launcher/test_pipeline_s3.py), one of
them corrupt, staged in and out through rclone S3 remotes with ``credentials: aws``. The rigs
run in network namespaces of their own: their jobs reach RGW, which listens on this machine's
loopback, through a relay on the host side of the rig's link.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3.rig import RigInfo, s3_client
from tests.support.rig_sites import OtherLauncher, launcher_on
from tests.support.s3_pipeline import (
    CORRUPT,
    SCENES,
    fresh_prefix,
    output_keys,
    pipeline_file,
    upload_scenes,
)
from tests.support.tcp_relay import TcpRelay

pytestmark = [pytest.mark.cluster, pytest.mark.s3, pytest.mark.slow, pytest.mark.timeout(900)]

SYSTEMS = [
    pytest.param("pbs", marks=pytest.mark.pbs),
    pytest.param("htcondor", marks=pytest.mark.htcondor),
]


@pytest.fixture(params=SYSTEMS)
def s3_site(
    request: pytest.FixtureRequest, s3_rig: RigInfo, tmp_path: Path
) -> Iterator[OtherLauncher]:
    """The launcher on one rig, with the S3 owner's keys and the relay's endpoint in its AWS_*
    variables (and no other AWS setting of this machine)."""
    for launcher in launcher_on(request, request.param, tmp_path):
        chroot = launcher.rig_module.RIG  # type: ignore[attr-defined]
        with TcpRelay(chroot.host_addr, "127.0.0.1", s3_rig.rgw_port) as relay:
            for key in [k for k in launcher.env if k.startswith("AWS_")]:
                del launcher.env[key]
            launcher.env.update(
                AWS_ACCESS_KEY_ID=s3_rig.owner.access_key,
                AWS_SECRET_ACCESS_KEY=s3_rig.owner.secret_key,
                AWS_ENDPOINT_URL=f"http://{chroot.host_addr}:{relay.port}",
                AWS_REGION=s3_rig.region,
                AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
                AWS_CONFIG_FILE=str(tmp_path / "no-config"),
            )
            yield launcher


@pytest.fixture
def prefix(s3_rig: RigInfo) -> Iterator[str]:
    yield from fresh_prefix(s3_rig)


def _run(site: OtherLauncher, path: Path) -> tuple[int, dict, str]:
    proc = site.run("--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--json",
                    timeout=600)  # fmt: skip
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_s3_pipeline_one_corrupt_scene_then_rerun(
    s3_site: OtherLauncher, s3_rig: RigInfo, prefix: str, tmp_path: Path
) -> None:
    good = upload_scenes(s3_rig, prefix, tmp_path)
    name = f"s3-{s3_site.system}-{os.getpid()}-{prefix[-4:]}"
    path = pipeline_file(tmp_path, s3_rig, name, f"{prefix}/in", f"{prefix}/out")
    assert s3_rig.owner.secret_key not in path.read_text()

    code, rep, stderr = _run(s3_site, path)
    assert code == 1, stderr
    failed = {r["scene"]: r for r in rep["scenes"] if r["state"] == "failed"}
    assert list(failed) == [CORRUPT], rep
    assert "RasterioIOError" in failed[CORRUPT]["error"] and failed[CORRUPT]["attempts"] == 2
    assert rep["done"] == 5 and "5 of 6 scenes done, 1 failed" in stderr
    assert output_keys(s3_rig, prefix) == [
        f"{prefix}/out/{s}/double.tif" for s in SCENES if s != CORRUPT
    ]
    assert all(r["footprint"] for r in rep["scenes"] if r["state"] == "done")

    s3_client(s3_rig).put_object(
        Bucket=s3_rig.bucket, Key=f"{prefix}/in/{CORRUPT}", Body=good[CORRUPT]
    )
    code, rep2, stderr = _run(s3_site, path)
    assert code == 0, stderr
    assert "6 scenes, 5 done already, 1 to process" in stderr
    assert rep2["ok"] and [a["scene"] for a in rep2["attempts"]] == [CORRUPT]
    assert output_keys(s3_rig, prefix) == [f"{prefix}/out/{s}/double.tif" for s in SCENES]
