"""Every notebook in notebooks/ runs top to bottom; a failing cell fails the suite."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import nbclient
import nbformat
import pytest

from eotoolkit.stores import storage
from tests.s3.rig import RigInfo

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.notebook


#: The S3 settings a notebook may take from the environment (none of this machine's leak in).
AWS_VARS = [
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_NO_SIGN_REQUEST", "AWS_REQUEST_PAYER",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "EO_NOTEBOOK_BUCKET",
]  # fmt: skip


def execute(
    path: Path, workdir: Path, env: dict[str, str], unset: tuple[str, ...] = ()
) -> nbformat.NotebookNode:
    """Run a notebook in ``workdir`` with extra environment variables (and without those of
    ``unset``) and return it executed."""
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in [*env, *unset]}
    for key in unset:
        os.environ.pop(key, None)
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        )
        client.execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nb


def test_notebooks_are_stored_without_outputs() -> None:
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name} is stored with outputs: strip them"
                assert cell.execution_count is None, f"{path.name} has execution counts"


def errors_and_text(nb: nbformat.NotebookNode) -> tuple[list[object], str]:
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs)
    return [out for out in outputs if out.output_type == "error"], text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_locally(path: Path, tmp_path: Path) -> None:
    """Without S3 settings (a laptop): notebook 2 skips its object storage section."""
    nb = execute(
        path, tmp_path, {"EO_NOTEBOOK_CLUSTER": "local", "MPLBACKEND": "Agg"}, tuple(AWS_VARS)
    )
    errors, text = errors_and_text(nb)
    assert not errors
    assert sum(1 for c in nb.cells if c.cell_type == "code" and c.outputs) > 0
    if path.name.startswith("02_"):
        assert "Skipping the object storage section" in text
    # a notebook that writes data into a temporary folder removes it at its end
    removed = [line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("removed /")]
    if path.name.startswith(("02_", "03_")):
        assert removed and not any(Path(folder).exists() for folder in removed), text[-500:]


@pytest.mark.s3
def test_stac_to_zarr_notebook_reads_and_writes_s3(s3_rig: RigInfo, tmp_path: Path) -> None:
    """With an endpoint and credentials in the environment (the RGW rig's owner), notebook 2
    uploads its catalog, loads from s3:// and writes and reopens an s3:// Zarr store."""
    path = next(p for p in NOTEBOOKS if p.name.startswith("02_"))
    bucket = f"eo-nb-{uuid.uuid4().hex[:8]}"
    env = {
        "EO_NOTEBOOK_CLUSTER": "local",
        "MPLBACKEND": "Agg",
        "AWS_ACCESS_KEY_ID": s3_rig.owner.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_rig.owner.secret_key,
        "AWS_ENDPOINT_URL": s3_rig.endpoint,
        "AWS_REGION": s3_rig.region,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "EO_NOTEBOOK_BUCKET": bucket,
    }
    fs = fsspec.filesystem(
        "s3", **storage.fsspec_options(storage.resolve(env=env))
    )  # the test's own view of the bucket
    try:
        nb = execute(path, tmp_path, env, tuple(AWS_VARS))
        errors, text = errors_and_text(nb)
        assert not errors
        assert "Skipping the object storage section" not in text
        assert f"objects uploaded to s3://{bucket}/stac-to-zarr-" in text
        assert f"first asset: s3://{bucket}/stac-to-zarr-" in text
        assert "holds the same values as the local one" in text
        assert s3_rig.owner.secret_key not in text
        assert fs.exists(bucket) and fs.ls(bucket) == []  # the notebook cleaned up after itself
    finally:
        if fs.exists(bucket):
            fs.rm(bucket, recursive=True)


REMOTE_RUNNER = r"""
import json, os, sys
import nbclient, nbformat

os.environ["EO_NOTEBOOK_CLUSTER"] = "slurm"
os.environ["MPLBACKEND"] = "Agg"
nb = nbformat.read(sys.argv[1], as_version=4)
error = None
try:
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3").execute()
except nbclient.exceptions.CellExecutionError as exc:
    error = str(exc)[-3000:]
outputs = "".join(
    out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
)
print("RESULT " + json.dumps({"error": error, "outputs": outputs[-6000:]}))
"""


@pytest.mark.cluster
def test_dask_notebook_runs_on_the_slurm_cluster(dask_single_for_notebook: object) -> None:
    from tests.integration.dask_slurm import remote

    info = dask_single_for_notebook
    path = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
    with info.connection() as conn:  # type: ignore[attr-defined]
        target = f"{remote.home(conn)}/.eo-tests/{path.name}"
        remote.sh(conn, "mkdir -p ~/.eo-tests")
        conn.put(str(path), target)
    result = remote.run_python(info, REMOTE_RUNNER, args=target, timeout=900)  # type: ignore[arg-type]
    assert result["error"] is None, result["error"]
    # The notebook's job script printout shows the workers were SLURM jobs of the site profile.
    assert "#SBATCH" in result["outputs"]
    assert "workers: ['tcp://" in result["outputs"]
