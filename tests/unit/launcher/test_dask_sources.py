"""The worker jobs' Dask config merged as Dask merges it, each value with its source."""

from __future__ import annotations

from pathlib import Path

from launcher.config import load_site
from launcher.sites import fit
from launcher.sites.dask_sources import ENV_MARK, FILE_MARK, merged, parse_cluster_files

OUTPUT = f"""{FILE_MARK} /etc/dask/site.yaml
jobqueue:
  slurm:
    account: shared
{FILE_MARK} /home/u/.config/dask/z.yaml
jobqueue:
  slurm:
    memory: 3GB
{FILE_MARK} /home/u/.config/dask/jobqueue.yaml
jobqueue:
  slurm:
    queue: oldgpu
    memory: 2GB
    job_cpu: 4
{ENV_MARK} /home/u/mydask
"""


def site(tmp_path: Path, **keys: str):  # type: ignore[no-untyped-def]
    ini = tmp_path / "platforms.ini"
    body = "".join(f"{k} = {v}\n" for k, v in keys.items())
    ini.write_text(f"[s]\nplatform = sandbox\nhost = h\n{body}")
    return load_site("s", ini)


def test_cluster_files_in_dask_order_with_notes() -> None:
    layers, notes = parse_cluster_files(OUTPUT, "slurm")
    assert [layer.source for layer in layers] == [
        "/etc/dask/site.yaml",
        "/home/u/.config/dask/jobqueue.yaml",
        "/home/u/.config/dask/z.yaml",
    ]
    assert layers[1].values == {"queue": "oldgpu", "memory": "2GB", "job-cpu": 4}
    assert "DASK_CONFIG=/home/u/mydask" in notes[0] and "not read by the jobs" in notes[0]


def test_profile_wins_and_unset_keys_come_from_the_users_files(tmp_path: Path) -> None:
    layers, notes = parse_cluster_files(OUTPUT, "slurm")
    result = merged(site(tmp_path, worker_memory="1GiB"), layers, "/home/u", notes)
    assert result.values["memory"] == "1GiB"
    assert result.sources["memory"].source.endswith("platforms.ini [s] worker_memory")
    assert result.values["queue"] == "oldgpu"
    assert result.key_text("queue") == (
        "'queue' in /home/u/.config/dask/jobqueue.yaml on the cluster (your own Dask config)"
    )
    assert result.values["account"] == "shared"
    assert result.sources["cores"].source.endswith("sandbox.yaml")
    text = "\n".join(result.lines())
    assert "(memory: '3GB' in /home/u/.config/dask/z.yaml is replaced)" in text


def test_site_partition_is_the_workers_queue(tmp_path: Path) -> None:
    layers, _ = parse_cluster_files(OUTPUT, "slurm")
    result = merged(site(tmp_path, partition="work"), layers, "/home/u", [])
    assert result.values["queue"] == "work"
    assert result.sources["queue"].source.endswith("[s] partition")


def test_without_a_connection_the_cluster_files_are_noted(tmp_path: Path) -> None:
    result = merged(site(tmp_path), None, "$HOME", [])
    assert any("not included" in note for note in result.notes)


def test_worker_request_names_the_users_file(tmp_path: Path) -> None:
    layers, _ = parse_cluster_files(OUTPUT, "slurm")
    the_site = site(tmp_path)
    request = fit.worker_request(the_site, merged(the_site, layers, "/home/u", []))
    assert request is not None
    assert request.partition == "oldgpu" and request.cpus == 4
    assert "/home/u/.config/dask/jobqueue.yaml on the cluster" in request.keys["partition"]
    assert "/home/u/.config/dask/jobqueue.yaml on the cluster" in request.keys["cpus"]
