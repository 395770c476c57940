"""The one-pass item parsing gives what the per-field functions give, on any field shapes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eotoolkit import _items
from eotoolkit.errors import InvalidParameterError
from eotoolkit.loader import group_items

_VALUES = st.one_of(
    st.none(), st.integers(-5, 5), st.sampled_from([0.0001, 1.0, 0.0, -0.1, 2.5]),
    st.sampled_from(["uint16", "int8"]),
)  # fmt: skip
_KEYS = ["nodata", "data_type", "scale", "offset", "raster:scale", "raster:offset"]
_BAND = st.dictionaries(st.sampled_from([*_KEYS, "name", "common_name"]), _VALUES, max_size=5)
_LIST = st.one_of(st.none(), st.lists(_BAND, max_size=3), st.just({}), st.just([1]), st.just(""))


@st.composite
def asset_fields(draw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = draw(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=4))
    for key in ("raster:bands", "bands", "eo:bands"):
        value = draw(_LIST)
        if value is not None:
            fields[key] = value
    return fields


def _reference(fields: dict[str, Any]) -> tuple:
    nodata, dtype, scale, offset, declared = _items._raster_info(fields)
    scale_declared = declared or _items._declares_scale(fields)
    return nodata, dtype, scale, offset, declared, scale_declared, _items._band_count(fields)


def _outcome(fn: Any, fields: dict[str, Any]) -> Any:
    try:
        return fn(fields)
    except Exception as exc:  # malformed values: the same kind of error either way
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(asset_fields())
def test_asset_info_is_the_per_field_functions(fields: dict[str, Any]) -> None:
    assert _outcome(_items._asset_info, fields) == _outcome(_reference, fields)


def test_times_parsed_as_one_array_as_one_by_one() -> None:
    raw = ["2024-05-01T10:06:14.123Z", "2024-05-02T09:50:11.1234+02:00", "2024-05-03", None]
    ids = ["a", "b", "c", "d"]
    whole = _items._parse_times(ids[:3], raw[:3])
    each = pd.Series(
        pd.DatetimeIndex([pd.to_datetime(v, utc=True, format="ISO8601") for v in raw[:3]])
    )
    pd.testing.assert_series_equal(whole, each)
    with pytest.raises(InvalidParameterError, match="Item 'd' has no usable time"):
        _items._parse_times(ids, raw)
    with pytest.raises(InvalidParameterError, match="Item 'b' has no usable time"):
        _items._parse_times(ids[:2], ["2024-05-01", "yesterday"])


class _Table:
    def __init__(self, times: list[str], lons: list[float]) -> None:
        self.times = np.asarray(times, "datetime64[ns]")
        lon = np.asarray(lons, float)
        self.lonlat_bbox = np.stack([lon, lon * 0, lon, lon * 0 + 1], axis=1)


@pytest.mark.parametrize("groupby", [None, "id", "solar_day", "time", "1D"])
def test_group_items_slots_and_their_times(groupby: str | None) -> None:
    table = _Table(
        ["2024-05-02T10:00", "2024-05-01T10:00", "2024-05-01T10:01", "2024-05-02T09:00"],
        [3.0, 3.0, 3.5, 2.0],
    )
    times, groups = group_items(table, groupby)  # type: ignore[arg-type]
    expect = [np.asarray([i]) for i in (1, 2, 3, 0)]
    if groupby in ("solar_day", "1D"):
        expect = [np.asarray([1, 2]), np.asarray([3, 0])]
    assert [g.tolist() for g in groups] == [g.tolist() for g in expect]
    np.testing.assert_array_equal(times, np.asarray([table.times[g].min() for g in expect]))
    assert times.dtype == np.dtype("datetime64[ns]")


_SHARED_MEMO = _items._InfoMemo()


@settings(max_examples=400, deadline=None)
@given(asset_fields())
def test_asset_info_once_per_band_is_asset_info(fields: dict[str, Any]) -> None:
    """One memo across all examples: a hit gives what the asset's own fields give."""
    for _ in range(2):
        got = _outcome(lambda f: _items._asset_info_once(f, _SHARED_MEMO), fields)
        assert got == _outcome(_items._asset_info, fields)


def test_solar_days_not_in_utc_order_are_grouped_each_in_time_order() -> None:
    """Items far apart in longitude: a later UTC time can fall on an earlier local day. Each
    slot holds its own items (mosaic in time order); slots are in time order."""
    from types import SimpleNamespace

    from eotoolkit.loader import group_items

    times = np.array(
        ["2024-03-01T09:00", "2024-03-01T09:30", "2024-03-01T09:05", "2024-03-02T09:00"],
        dtype="datetime64[ns]",
    )
    # lon 150 (local = UTC + 10 h: March 1), lon -170 (UTC - 11 h 20: February 29)
    bbox = np.array(
        [[149.5, -30, 150.5, -29], [-170.5, -15, -169.5, -14], [149.6, -31, 150.6, -30],
         [149.5, -30, 150.5, -29]]
    )  # fmt: skip
    slots, groups = group_items(SimpleNamespace(times=times, lonlat_bbox=bbox), "solar_day")
    assert [g.tolist() for g in groups] == [[0, 2], [1], [3]]
    assert slots.tolist() == times[[0, 1, 3]].tolist()
