"""Deliberately naive pure-Python SI-x, written from the model description.

Loops per pixel, per day and per hour using only the ``math`` module, so it shares no code
with ``eotoolkit.ops.phenology``. Coefficients are restated here from the model description.
"""

from __future__ import annotations

import math

LEAF = {
    "lilac": (3.306, 13.878, 0.201, 0.153),
    "arnold_red": (4.266, 20.899, 0.000, 0.248),
    "zabelli": (2.802, 21.433, 0.266, 0.000),
}
BLOOM = {
    "lilac": (-23.934, 0.116),
    "arnold_red": (-24.825, 0.127),
    "zabelli": (-11.368, 0.096),
}


def gdh_day(tmin_c: float, tmax_c: float, dayl_s: float) -> float:
    """Growing degree hours of one day, hour by hour."""
    tmin = tmin_c * 1.8 + 32.0
    tmax = tmax_c * 1.8 + 32.0
    length = dayl_s / 3600.0
    dt = tmax - tmin
    total = 0.0
    for h in range(24):
        temp = tmin + dt * math.sin(math.pi * h / (length + 4.0))
        if h > math.floor(length):
            c = dt * math.sin(math.pi * length / (length + 4.0))
            try:
                night = tmin + c * (
                    1.0 - math.log(h - math.floor(length)) / math.log(24.0 - length)
                )
            except (ValueError, ZeroDivisionError):
                night = math.nan
            if math.isfinite(night):
                temp = night
        if temp - 31.0 > 0.0:
            total += temp - 31.0
    return total


def spring_index_pixel(
    tmin: list[float],
    tmax: list[float],
    dayl: list[float],
    start_doy: int,
    end_doy: int,
) -> tuple[dict[str, float], dict[str, float]]:
    """First leaf and first bloom (day of year) per plant and mean for one pixel's year."""
    doys = list(range(start_doy, end_doy + 1))
    gdh = [gdh_day(tmin[d - 1], tmax[d - 1], dayl[d - 1]) for d in doys]
    padded = [gdh[0]] * 7 + gdh
    leaf: dict[str, float] = {}
    bloom: dict[str, float] = {}
    for plant, (a, b, c, d) in LEAF.items():
        leaf[plant] = math.nan
        synop = 0
        for t, doy in enumerate(doys):
            p = t + 7
            dde2 = padded[p - 2] + padded[p - 1] + padded[p]
            dd57 = padded[p - 7] + padded[p - 6] + padded[p - 5]
            if dde2 >= 637.0:
                synop += 1
            mds0 = doy - 1
            if mds0 * a + synop * b + dde2 * c + dd57 * d > 999.5:
                leaf[plant] = doy + (1 if plant == "arnold_red" else 0)
                break
    for plant, (e, f) in BLOOM.items():
        bloom[plant] = math.nan
        first_leaf = leaf[plant]
        if math.isnan(first_leaf):
            continue
        agdh = 0.0
        for t, doy in enumerate(doys):
            if doy > first_leaf:
                agdh += gdh[t]
            mds0 = max(math.floor(doy - first_leaf), 0)
            if mds0 * e + agdh * f > 999.5:
                bloom[plant] = doy
                break
    for result in (leaf, bloom):
        values = [result[p] for p in LEAF]
        result["mean"] = (
            math.nan if any(math.isnan(v) for v in values) else float(round(sum(values) / 3))
        )
    return leaf, bloom
