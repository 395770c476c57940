"""--mode pipeline on the single-node cluster with its data in a real S3 server (Ceph RGW).

Six real COGs are uploaded to a bucket, one of them corrupt; the pipeline's remotes are rclone
S3 remotes with ``credentials: aws``, filled from the launcher's AWS_* variables (the S3 rig's
owner keys and endpoint). Each array task reads its scene with rasterio and writes a derived
GeoTIFF, so the corrupt scene fails for a real reason (GDAL cannot decode it). The results are
checked in the bucket with an S3 client, and the secret key is looked for everywhere a user
could see it. RGW listens on the host's loopback, which the single-node cluster's jobs share.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import rasterio
import yaml

from tests.cluster import rig
from tests.s3.rig import RigInfo, s3_client
from tests.support.launcher_run import Launcher, checked_sandbox, launcher_env
from tests.support.pipeline_records import job_records, ledger_records, when
from tests.support.s3_pipeline import (
    CORRUPT,
    SCENES,
    fresh_prefix,
    pipeline_file,
    upload_scenes,
)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.s3,
    pytest.mark.slow,
    pytest.mark.timeout(900),
]

AWS_VARS = re.compile(r"^AWS_")


@pytest.fixture
def s3_launcher(
    slurm_cluster: rig.ClusterInfo, cluster_venv: str, s3_rig: RigInfo, tmp_path: Path
) -> Iterator[Launcher]:
    """The launcher on the single-node cluster, with the S3 owner's keys in its AWS_* variables
    (and no other AWS setting of this machine)."""
    env = {k: v for k, v in launcher_env(tmp_path).items() if not AWS_VARS.match(k)}
    env.update(
        AWS_ACCESS_KEY_ID=s3_rig.owner.access_key,
        AWS_SECRET_ACCESS_KEY=s3_rig.owner.secret_key,
        AWS_ENDPOINT_URL=s3_rig.endpoint,
        AWS_REGION=s3_rig.region,
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
    )
    yield from checked_sandbox(slurm_cluster, cluster_venv, tmp_path, env)


@pytest.fixture
def prefix(s3_rig: RigInfo) -> Iterator[str]:
    """A fresh key prefix in the rig's bucket, emptied afterwards."""
    yield from fresh_prefix(s3_rig)


class Watcher:
    """Samples every process's command line while the pipeline runs."""

    def __init__(self) -> None:
        self.samples: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.wait(0.2):
            ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True)
            self.samples.append(ps.stdout)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def readable_files_with(secret: str, roots: list[Path]) -> list[str]:
    """Files under ``roots`` that group or others may read and that contain ``secret``."""
    bad = []
    for root in roots:
        for path in root.rglob("*"):
            try:
                mode = path.lstat().st_mode
                if not stat.S_ISREG(mode) or not mode & (stat.S_IRGRP | stat.S_IROTH):
                    continue
                if secret.encode() in path.read_bytes():
                    bad.append(str(path))
            except OSError:
                continue
    return bad


def batch_script(info: rig.ClusterInfo, job_id: str) -> str:
    """The job script as SLURM stored it."""
    return subprocess.run(
        rig.slurm_cmd(info, "scontrol", "write", "batch_script", job_id, "-"),
        capture_output=True, text=True,
    ).stdout  # fmt: skip


def run_pipeline(launcher: Launcher, path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    with Watcher() as watcher:
        proc = launcher.run(
            "--uid", "sandbox", "--mode", "pipeline", "--file", str(path), "--json", timeout=600
        )  # fmt: skip
    return proc, "".join(watcher.samples)


def test_s3_pipeline_six_scenes_one_corrupt_then_rerun(
    s3_launcher: Launcher, s3_rig: RigInfo, prefix: str, tmp_path: Path
) -> None:
    info = s3_launcher.info
    assert info is not None
    s3, bucket = s3_client(s3_rig), s3_rig.bucket
    good = upload_scenes(s3_rig, prefix, tmp_path)
    name = f"s3six-{os.getpid()}-{prefix[-4:]}"
    path = pipeline_file(tmp_path, s3_rig, name, f"{prefix}/in", f"{prefix}/out")
    secret = s3_rig.owner.secret_key
    assert secret not in path.read_text()

    proc, ps_seen = run_pipeline(s3_launcher, path)
    assert proc.returncode == 1, proc.stderr
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    # The report names the corrupt scene and GDAL's error; the table says the same.
    failed = {r["scene"]: r for r in rep["scenes"] if r["state"] == "failed"}
    assert list(failed) == [CORRUPT], rep
    error = failed[CORRUPT]["error"]
    assert "exit status 1" in error and "RasterioIOError" in error, error
    assert failed[CORRUPT]["attempts"] == 2
    assert rep["done"] == 5 and not rep["ok"]
    assert CORRUPT in proc.stderr and "5 of 6 scenes done, 1 failed" in proc.stderr
    # Each done scene's extent, read by the array task from the staged-in COG, is on the
    # report's map: UTM 31N, so between 0 and 6 degrees east.
    for row in rep["scenes"]:
        if row["state"] == "done":
            west, south, east, north = row["footprint"]
            assert 0 <= west < east <= 6 and 0 < south < north < 84, row
    # The five results are in the bucket, real GeoTIFFs of the doubled input; nothing of the
    # corrupt scene.
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/out/").get("Contents", [])
    keys = sorted(obj["Key"] for obj in listed)
    assert keys == [f"{prefix}/out/{s}/double.tif" for s in SCENES if s != CORRUPT], keys
    result = tmp_path / "result.tif"
    result.write_bytes(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    with rasterio.open(result) as src:
        assert src.crs.to_epsg() == 32631 and src.count == 2
        assert int(src.read(1)[1, 0]) == 200  # scene1's pixels are 100
    # Stage-in, processing and stage-out ran in this order, chained by afterok.
    jobs = rep["jobs"]
    stage_in = job_records(info, jobs["stage_in"]["job_id"])[0]
    tasks = job_records(info, jobs["process"]["job_id"])
    stage_out = job_records(info, jobs["stage_out"]["job_id"])[0]
    assert len(tasks) == 6 and {t["JobState"] for t in tasks} == {"COMPLETED"}
    assert stage_in["JobState"] == stage_out["JobState"] == "COMPLETED"
    assert all(when(t["StartTime"]) >= when(stage_in["EndTime"]) for t in tasks)
    assert when(stage_out["StartTime"]) >= max(when(t["EndTime"]) for t in tasks)
    workdir = f"/home/{info.user}/.eohpc/pipelines/{name}"
    assert {s: r["attempts"] for s, r in ledger_records(info, workdir).items()} == {
        s: 2 if s == CORRUPT else 1 for s in SCENES
    }
    # The secret is in no command line (sampled while the pipeline ran), job record or script.
    assert "run_jupyter.py" in ps_seen and secret not in ps_seen
    for step in ("stage_in", "process", "stage_out"):
        job_id = jobs[step]["job_id"]
        assert secret not in s3_launcher.scontrol_job(job_id)
        script = batch_script(info, job_id)
        assert "rclone.env" in script and secret not in script

    # Replace the corrupt object: the re-run processes exactly that scene.
    s3.put_object(Bucket=bucket, Key=f"{prefix}/in/{CORRUPT}", Body=good[CORRUPT])
    again, ps_again = run_pipeline(s3_launcher, path)
    assert again.returncode == 0, again.stderr
    assert "6 scenes, 5 done already, 1 to process" in again.stderr
    second = ledger_records(info, workdir)
    assert {s: r["attempts"] for s, r in second.items()} == {
        s: 3 if s == CORRUPT else 1 for s in SCENES
    }
    assert all(r["state"] == "done" for r in second.values())
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/out/").get("Contents", [])
    assert sorted(o["Key"] for o in listed) == [f"{prefix}/out/{s}/double.tif" for s in SCENES]
    rep2 = json.loads(again.stdout.strip().splitlines()[-1])
    assert rep2["ok"] and rep2["done"] == 6

    # The secret sits only in the private rclone.env of each run; no file anyone else may read
    # holds it (the user's home, the launcher's state, the cluster's spool and state).
    assert secret not in ps_again
    env_file = Path(f"/home/{info.user}/.eohpc/runs/{rep2['run']}/rclone.env")
    assert secret in env_file.read_text()
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert oct(env_file.parent.stat().st_mode & 0o777) == "0o700"
    roots = [Path(f"/home/{info.user}"), tmp_path, rig.topo_dir(info.topology)]
    assert readable_files_with(secret, roots) == []


def test_s3_failing_stage_in_cancels_the_downstream_jobs(
    s3_launcher: Launcher, s3_rig: RigInfo, prefix: str, tmp_path: Path
) -> None:
    """The source bucket does not exist: stage-in fails, processing and stage-out are
    cancelled, nothing is left in the queue and nothing reaches the destination."""
    s3 = s3_client(s3_rig)
    path = pipeline_file(tmp_path, s3_rig, f"s3nosrc-{os.getpid()}", "x", f"{prefix}/out")
    doc = yaml.safe_load(path.read_text())
    doc["stage_in"]["from"] = f"src:no-such-bucket-{prefix}/in"
    path.write_text(yaml.safe_dump(doc))
    proc, _ = run_pipeline(s3_launcher, path)
    assert proc.returncode == 1, proc.stderr
    rep = json.loads(proc.stdout.strip().splitlines()[-1])
    states = {step: job["state"] for step, job in rep["jobs"].items()}
    assert states == {"stage_in": "FAILED", "process": "CANCELLED", "stage_out": "CANCELLED"}
    assert re.search(r"step stage_in \(job \d+\) ended FAILED", rep["error"])
    assert rep["pending"] == 6 and not rep["ok"]
    assert s3_launcher.squeue() == ""
    listed = s3.list_objects_v2(Bucket=s3_rig.bucket, Prefix=f"{prefix}/out/")
    assert listed.get("KeyCount", 0) == 0
