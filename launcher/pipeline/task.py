"""One array task of a staged pipeline, on the cluster: process its scenes, record each.

``python -m launcher.pipeline.task --run-dir DIR --index N [--tasks T]`` takes scene N of the
run's ``scenes.txt`` (with ``--tasks``, when the batch system's array limit gave the array
fewer tasks than scenes: scenes N, N + T, N + 2T, ... one after another). With ``--mpi R``
(``process.mpi``) it is one of a job's R MPI ranks, started by the site's MPI launcher, and
takes the scenes from its rank on in steps of R (mpi4py tells the rank). A scene the ledger
has as done is skipped; for each other one the task runs the pipeline's
command up to ``1 + retries`` times with the same inputs. Each attempt writes into a fresh
``<workdir>/output/.partial/<scene>-<attempt>`` directory (``{output}``), renamed to
``<workdir>/output/<scene>`` once the command succeeded; stage-out copies only those.

A scene that fails is recorded in the ledger (exit code and the last lines of its output) and
the task still exits 0, so that stage-out runs for the other scenes; the report and the
launcher's exit status tell the failure. A task exits non-zero only when it cannot work at all
(no pipeline file, no ledger).

Imports nothing of SSH (the standard library, PyYAML, the ledger and the pipeline schema; and
rasterio, where installed, for the extent of a scene that is a raster, drawn on the report's map).
"""

from __future__ import annotations

import argparse
import collections
import json
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

from eoshared.ledger import DONE, LEDGER_NAME, Ledger
from launcher.pipeline.spec import Pipeline, scene_dir

PIPELINE_JSON = "pipeline.json"
SCENES_TXT = "scenes.txt"
REPORT_JSON = "report.json"
OUTPUT_LINES = 8
RETRY_PAUSE = 2.0


def load(run_dir: Path) -> tuple[Pipeline, list[str]]:
    """The run's pipeline and its scene list."""
    pipe = Pipeline.from_json(json.loads((run_dir / PIPELINE_JSON).read_text(encoding="utf-8")))
    scenes = [s for s in (run_dir / SCENES_TXT).read_text(encoding="utf-8").splitlines() if s]
    return pipe, scenes


def attempt(pipe: Pipeline, scene: str, number: int, partial: Path) -> tuple[int, str]:
    """Run the command once; return its exit status and its last lines of output."""
    workdir = Path(pipe.workdir)
    values = {
        "scene": scene,
        "input": str(workdir / "input"),
        "output": str(partial),
        "workdir": str(workdir),
        "attempt": str(number),
    }
    command = pipe.command.format(**{k: shlex.quote(v) for k, v in values.items()})
    print(f"eo-hpc: scene {scene} attempt {number}: {command}", flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_LINES)
    with subprocess.Popen(
        ["/bin/bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
        text=True,
        errors="replace",
    ) as proc:
        deadline = time.monotonic() + pipe.timeout if pipe.timeout else None
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()  # the step's output file shows the command's output as it runs
            tail.append(line.rstrip())
            if deadline and time.monotonic() > deadline:
                proc.kill()
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()) if deadline else None)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if deadline and time.monotonic() > deadline:
            return 124, f"timed out after {pipe.timeout:.0f}s; " + " | ".join(tail)
    sys.stdout.flush()
    return code, " | ".join(tail)


def footprint(path: Path) -> list[float] | None:
    """The lon/lat extent (west, south, east, north) of a raster file with a CRS, for the
    report's map; None for anything else (or where rasterio is not installed)."""
    if not path.is_file():
        return None
    try:
        import rasterio
        from rasterio.warp import transform_bounds
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as src:
                if src.crs is None:
                    return None
                box = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    except Exception:  # not a raster GDAL reads: no footprint, the scene is processed anyway
        return None
    return [round(float(v), 6) for v in box]


def output_location(pipe: Pipeline, scene: str) -> str:
    """Where a done scene's results end up (the stage-out destination, else the workdir)."""
    name = scene_dir(scene)
    if pipe.stage_out is not None:
        return f"{pipe.stage_out.remote.rstrip('/')}/{name}"
    return f"{pipe.workdir}/output/{name}"


def process_scene(run_dir: Path, pipe: Pipeline, scene: str, task: str = "") -> None:
    """Process one scene of the run (see the module's description)."""
    run = run_dir.name
    ledger = Ledger(Path(pipe.workdir) / LEDGER_NAME)
    record = ledger.records().get(scene)
    if record is not None and record.state == DONE:
        print(f"eo-hpc: scene {scene} is done already ({record.output}); skipped", flush=True)
        return
    outputs = Path(pipe.workdir) / "output"
    final = outputs / scene_dir(scene)
    extent = footprint(Path(pipe.workdir) / "input" / scene)
    for tries in range(1 + pipe.retries):
        if tries:
            time.sleep(RETRY_PAUSE * tries)
        number = ledger.start(scene, run=run, task=task)
        partial = outputs / ".partial" / f"{scene_dir(scene)}-{number}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True, mode=0o700)
        try:
            code, tail = attempt(pipe, scene, number, partial)
        except OSError as exc:
            code, tail = 127, str(exc)
        if code == 0:
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
            ledger.finish(
                scene, True, run=run, output=output_location(pipe, scene), footprint=extent
            )
            print(f"eo-hpc: scene {scene} done", flush=True)
            return
        shutil.rmtree(partial, ignore_errors=True)
        error = f"exit status {code}: {tail}".strip()
        ledger.finish(scene, False, run=run, error=error, footprint=extent)
        print(f"eo-hpc: scene {scene} attempt {number} failed (exit status {code})", flush=True)


def process(run_dir: Path, index: int, task: str = "", tasks: int = 0) -> int:
    """Process the run's scenes ``index``, ``index + tasks``, ... (scene ``index`` alone when
    the array has a task per scene: ``tasks`` 0 or the number of scenes)."""
    pipe, scenes = load(run_dir)
    for scene in scenes[index :: tasks or len(scenes)]:
        process_scene(run_dir, pipe, scene, task)
    return 0


def mpi_rank(ranks: int) -> tuple[int, int]:
    """This process's MPI rank and the number of ranks (mpi4py); SystemExit with the cause and
    the fix where mpi4py is missing or the launcher did not start ``ranks`` ranks of one
    world (each process would then take every scene)."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise SystemExit(
            f"eo-hpc: process.mpi needs mpi4py in the cluster's environment ({exc}). Fix: "
            "install it there (pip install mpi4py, or the site's module) and run again."
        ) from None
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    if ranks and size != ranks:
        raise SystemExit(
            f"eo-hpc: this process is rank {rank} of {size}, not one of the job's {ranks} MPI "
            "ranks: process.mpiexec did not start them as one MPI world. Fix: give the "
            "site's MPI launcher (mpiexec, mpirun, or srun --mpi=pmix) in process.mpiexec."
        )
    return rank, size


def main(argv: list[str] | None = None) -> int:
    """Entry point of an array task, or of an MPI rank (``--mpi RANKS``: the ranks of one job
    take every RANKS-th scene from their rank on, each recorded under ``TASK.RANK``)."""
    parser = argparse.ArgumentParser(prog="python -m launcher.pipeline.task")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--index", type=int, default=None)
    parser.add_argument("--task", default="", help="the array task's name in the ledger")
    parser.add_argument(
        "--tasks", type=int, default=0, help="the array's tasks, when fewer than the scenes"
    )
    parser.add_argument(
        "--mpi", type=int, default=0, metavar="RANKS", help="one of the job's RANKS MPI ranks"
    )
    args = parser.parse_args(argv)
    if args.mpi:
        rank, size = mpi_rank(args.mpi)
        return process(args.run_dir, rank, f"{args.task}.{rank}", size)
    if args.index is None:
        parser.error("--index is required (or --mpi)")
    return process(args.run_dir, args.index, args.task, args.tasks)


if __name__ == "__main__":
    sys.exit(main())
