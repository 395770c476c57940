"""Many more generated grid cases than CI runs: ``python -m benchmarks.grid_properties
--examples 500 [--seed N] [--chunked-nearest | --chunked METHOD]``.

Each case writes real COGs on a drawn source grid, loads them with ``eotoolkit.load`` onto a
drawn target grid and compares with ``rasterio.warp.reproject`` (see
tests/integration/eotoolkit/grid_cases.py). Prints the failing cases grouped by kind and the
first of each, ready to paste as an ``@example`` of tests/integration/eotoolkit/
test_grid_properties.py; exits 1 when any case failed.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import warnings

from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.integration.eotoolkit.grid_cases import Case, cases, check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--chunked-nearest", action="store_true", help="only nearest grids read in chunks"
    )
    parser.add_argument(
        "--chunked",
        choices=["nearest", "average", "bilinear", "cubic"],
        help="only grids of this resampling method, read in chunks",
    )
    args = parser.parse_args(argv)
    failures: dict[tuple, list[tuple[Case, str]]] = collections.defaultdict(list)
    count = 0

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases(chunked_nearest=args.chunked_nearest, chunked=args.chunked))
    def run(case: Case) -> None:
        nonlocal count
        count += 1
        try:
            check(case)
        except Exception as exc:
            key = (type(exc).__name__, case.method, case.src_crs == case.dst_crs, case.site)
            failures[key].append((case, str(exc)[:400]))

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()
    elapsed = time.perf_counter() - start
    print(f"{count} cases in {elapsed:.1f} s ({elapsed / max(count, 1) * 1000:.0f} ms each)")
    for (kind, method, same, site), found in sorted(failures.items()):
        print(f"\n{len(found)} x {kind}: {method}, {'same CRS' if same else 'reprojected'}, {site}")
        case, message = found[0]
        print(f"  {case!r}\n  {message}")
    total = sum(len(v) for v in failures.values())
    print(f"\n{total} of {count} cases failed")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
