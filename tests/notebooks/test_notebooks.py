"""Every notebook in notebooks/ runs top to bottom; a failing cell fails the suite."""

from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.notebook


def execute(path: Path, workdir: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run a notebook in ``workdir`` with extra environment variables and return it executed."""
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in env}
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_locally(path: Path, tmp_path: Path) -> None:
    nb = execute(path, tmp_path, {"EO_NOTEBOOK_CLUSTER": "local", "MPLBACKEND": "Agg"})
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    assert sum(1 for c in nb.cells if c.cell_type == "code" and c.outputs) > 0


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
