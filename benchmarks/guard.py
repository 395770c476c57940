"""Speed guard: eotoolkit of a base commit next to the working tree, interleaved in one run.

    python -m benchmarks.guard [--base REF] [--rounds 3] [--items 20000]

Time every change under ``eotoolkit/`` with it before committing. It takes the base's
``eotoolkit/`` and ``launcher/`` with ``git archive`` into a temporary folder and runs each figure
in fresh processes, alternating base and working tree (the order swapped every round), with
that side's packages first on ``PYTHONPATH``:

* ``w``: search -> load (B04/B08 average and SCL nearest at 20 m from 10 m and 20 m COGs, in
  the items' own CRS, solar-day mosaic) -> mask_clouds -> NDVI -> monthly median -> to_zarr,
  on 2 synthetic tiles x 8 dates of 2048 pixels (``benchmarks/data/``, made once with the
  working tree's ``eotoolkit.synthetic``). CPU seconds of the process (all threads), imports
  excluded.
* ``items``: a lazy ``load`` of ``--items`` item dicts cloned from that collection's items
  (CPU and wall seconds of the load after a small warm-up load), and the process's peak RSS.

It prints each figure's median per side and the ratio tree / base. REF defaults to the last
landed commit of ``main`` (``git merge-base HEAD main``). A ratio above 1.10 on a quiet machine
is a slowdown to explain or remove; on a busy one, compare CPU figures of several rounds. It is
a benchmark: CI times nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import dataset

#: The guard's collection: small enough for a few rounds in a minute or two.
PARAMS = dataset.Params(size=2048, dates=8, tiles=2)
#: A ratio tree / base above this is flagged.
SLOWER = 1.10

#: Workload W on eotoolkit's public API; argv: catalog, output store.
W_CODE = """
import sys, time
import eotoolkit as eot
api = (eot.search, eot.load, eot.mask_clouds, eot.index, eot.composite, eot.to_zarr)
import spyndex  # imported by index on first use: an import, not the workload
t = time.process_time()
items = eot.search(sys.argv[1])
ds = eot.load(items, bands=["B04", "B08", "SCL"], resolution=20, groupby="solar_day",
              chunks=1024, resampling={"B04": "average", "B08": "average", "SCL": "nearest"})
ds = eot.mask_clouds(ds, scl="SCL", classes=(0, 3, 8, 9, 10))
ndvi = eot.index(ds, "NDVI")
ndvi = ndvi["NDVI"] if hasattr(ndvi, "data_vars") else ndvi
med = eot.composite(ndvi, freq="1MS", stat="median")
eot.to_zarr(med.rename("ndvi").to_dataset(), sys.argv[2], mode="w")
print("cpu", time.process_time() - t)
"""

#: A lazy load of N item dicts; argv: catalog, N.
ITEMS_CODE = """
import json, resource, sys, time
from pathlib import Path
import eotoolkit as eot
items = []
for path in sorted(Path(sys.argv[1]).parent.glob("*/*/*.json")):
    item = json.loads(path.read_text())
    if item.get("type") != "Feature":
        continue
    for asset in item["assets"].values():
        if not asset["href"].startswith("/") and "://" not in asset["href"]:
            asset["href"] = str((path.parent / asset["href"]).resolve())
    items.append(item)
kw = dict(bands=["B04", "B08", "SCL"], resolution=20, groupby="id")
eot.load(items, **kw)  # warm-up: imports and caches of a first load
n = int(sys.argv[2])
texts = [json.dumps(it) for it in items]
out = []
for k in range(n):
    d = json.loads(texts[k % len(texts)])
    d["id"] = f"{d['id']}-{k}"
    out.append(d)
c, w = time.process_time(), time.perf_counter()
ds = eot.load(out, **kw)
print("cpu", time.process_time() - c)
print("wall", time.perf_counter() - w)
print("rss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


@dataclass(frozen=True)
class Row:
    """One printed figure: the medians of both sides and their ratio."""

    figure: str
    unit: str
    base: float
    tree: float
    base_runs: tuple[float, ...]
    tree_runs: tuple[float, ...]

    @property
    def ratio(self) -> float:
        return self.tree / self.base if self.base else float("inf")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: ``--base REF`` (None: the merge base with main), rounds, items."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.guard", description=(__doc__ or "").splitlines()[0]
    )
    ap.add_argument(
        "--base", default=None, help="git ref of the base (default: git merge-base HEAD main)"
    )
    ap.add_argument("--rounds", type=_positive, default=3, help="interleaved rounds (default 3)")
    ap.add_argument(
        "--items", type=_positive, default=20000, help="item dicts of the lazy load (default 20000)"
    )
    return ap.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def summarise(runs: dict[tuple[str, str], list[float]], units: dict[str, str]) -> list[Row]:
    """Per figure (in the order first seen), the median of each side's runs."""
    figures = list(dict.fromkeys(fig for fig, _ in runs))
    rows = []
    for fig in figures:
        base, tree = runs.get((fig, "base"), []), runs.get((fig, "tree"), [])
        if not base or not tree:
            continue
        medians = statistics.median(base), statistics.median(tree)
        rows.append(Row(fig, units.get(fig, ""), *medians, tuple(base), tuple(tree)))
    return rows


def format_rows(rows: list[Row]) -> str:
    """The table the guard prints, a slower figure flagged."""
    lines = [f"  {'figure':<16} {'base':>9} {'tree':>9} {'tree/base':>10}   runs base | tree"]
    for r in rows:
        flag = "  <- slower" if r.ratio > SLOWER else ""
        runs = " ".join(f"{v:.2f}" for v in r.base_runs) + " | "
        runs += " ".join(f"{v:.2f}" for v in r.tree_runs)
        name = f"{r.figure} ({r.unit})" if r.unit else r.figure
        lines.append(f"  {name:<16} {r.base:9.2f} {r.tree:9.2f} {r.ratio:9.2f}x   {runs}{flag}")
    return "\n".join(lines)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def resolve_base(ref: str | None) -> tuple[str, str]:
    """(short commit, how it was chosen) of the base."""
    if ref is None:
        try:
            sha = _git("merge-base", "HEAD", "main")
        except subprocess.CalledProcessError:
            sys.exit("guard: no branch 'main' to take the base from; pass --base REF")
        return _git("rev-parse", "--short", sha), "git merge-base HEAD main"
    try:
        return _git("rev-parse", "--short", f"{ref}^{{commit}}"), ref
    except subprocess.CalledProcessError:
        sys.exit(f"guard: {ref!r} is not a commit")


PACKAGES = ("eotoolkit", "launcher", "eoshared")


def extract(sha: str, into: Path) -> Path:
    """The base's packages (``eotoolkit/``, ``launcher/`` and ``eoshared/`` where it has it)
    under ``into``."""
    into.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", sha], capture_output=True, text=True, check=True
    ).stdout.split()
    packages = [name for name in PACKAGES if name in listed]
    tar = subprocess.run(["git", "archive", sha, *packages], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=tar, check=True)
    return into


def run_figure(code: str, args: list[str], root: Path, cwd: Path) -> dict[str, float]:
    """The ``name value`` lines one fresh process prints, eotoolkit imported from ``root``
    (run in ``cwd``, outside both trees)."""
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env, cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        sys.exit(f"guard: a run failed (eotoolkit from {root}):\n{done.stderr.strip()[-2000:]}")
    said = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                said[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return said


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the figures on both sides, interleaved, and print the table."""
    a = parse_args(argv)
    top = Path(_git("rev-parse", "--show-toplevel"))
    sha, how = resolve_base(a.base)
    catalog = dataset.ensure(PARAMS)
    work = Path(tempfile.mkdtemp(prefix="eo-guard-"))
    load_start = _load()
    try:
        sides = {"base": extract(sha, work / "base"), "tree": top}
        runs: dict[tuple[str, str], list[float]] = {}
        for k in range(a.rounds):
            order = ("base", "tree") if k % 2 == 0 else ("tree", "base")
            for who in order:
                store = str(work / f"{who}.zarr")
                got = run_figure(W_CODE, [str(catalog), store], sides[who], work)
                runs.setdefault(("w", who), []).append(got["cpu"])
                got = run_figure(ITEMS_CODE, [str(catalog), str(a.items)], sides[who], work)
                runs.setdefault(("items", who), []).append(got["cpu"])
                runs.setdefault(("items wall", who), []).append(got["wall"])
                runs.setdefault(("items RSS", who), []).append(got["rss_mib"])
        units = {"w": "CPU s", "items": "CPU s", "items wall": "s", "items RSS": "MiB"}
        rows = summarise(runs, units)
        print(
            f"guard: base {sha} ({how}) vs working tree {top}; {a.rounds} interleaved rounds; "
            f"items = {a.items} item dicts; load average {load_start} -> {_load()} on "
            f"{os.cpu_count()} CPUs; medians"
        )
        print(format_rows(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
