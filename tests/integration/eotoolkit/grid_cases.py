"""Generated grid cases: real COGs on a drawn source grid, loaded by ``eotoolkit.load`` onto a
drawn target grid and compared with a whole-grid GDAL warp (rasterio) of the same files.

Shared by the property suite (tests/integration/eotoolkit/test_grid_properties.py, a bounded
number of examples) and ``python -m benchmarks.grid_properties`` (as many as asked).

What is compared:

* the grid: the requested CRS, pixel size and sign convention (x grows east, y decreases
  south), pixel edges on multiples of the pixel size, 1-D ``y``/``x`` coordinates with the CRS
  attached, and an extent that covers the data footprint (or the bbox) by at most one pixel
  more on each side;
* the pixels: identical to the reference for ``nearest``; within ``TOLERANCE`` for
  ``average`` and ``KERNEL_TOLERANCE`` for ``bilinear`` and ``cubic``; identical nodata (NaN)
  masks for every method. Grids are read whole or in chunks of 5 or 16 pixels (nearest,
  average and the kernels);
* a grid read in chunks against itself read whole: the same valid pixels, nearest bit for bit,
  the others within ``TOLERANCE``.

The reference mosaics the tiles in item order, first valid pixel wins, as ``load`` does. The
COGs are written without overviews, so that both sides read full-resolution pixels (choosing
an overview is a separate, documented approximation of ``load`` when downsampling).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from hypothesis import strategies as st
from pyproj import CRS, Transformer
from rasterio.crs import CRS as RioCRS
from rasterio.io import MemoryFile
from rasterio.vrt import WarpedVRT
from rasterio.warp import Resampling, transform_bounds

#: Tolerance of ``average``, in source data units: GDAL resamples integer data in its own type
#: (rounded to the nearest integer) where the reference works in float64.
TOLERANCE = {"atol": 1.0, "rtol": 1e-4}
#: Tolerance of the interpolating kernels: the rounding of integer results (``load`` rounds the
#: float64 kernel result to the source's type). Both sides transform every pixel exactly and
#: state the scale of the pixels, so a grid read in chunks samples the source where the grid
#: read whole does. (With GDAL's default 0.125-pixel approximation, interpolated along each
#: warp's rows, chunks sampled the source a fraction of a pixel away: values off by up to 4.6
#: units on this suite's noise, and pixels at a tile's edge valid in one and empty in the other.)
KERNEL_TOLERANCE = TOLERANCE

#: Where the data lie, with the target CRSs that make sense there (a UTM zone, geographic,
#: LAEA Europe, Web Mercator, polar stereographic, EASE-Grid 2.0 equal-area).
SITES: dict[str, tuple[tuple[float, float], list[str]]] = {
    "europe": ((15.2, 48.1), ["EPSG:32633", "EPSG:4326", "EPSG:3035", "EPSG:3857", "EPSG:6933"]),
    "arctic": ((21.0, 78.6), ["EPSG:32634", "EPSG:4326", "EPSG:3413", "EPSG:3857"]),
    "antarctic": ((-62.0, -74.5), ["EPSG:32720", "EPSG:4326", "EPSG:3031", "EPSG:6933"]),
    "antimeridian": (
        (179.98, 52.0),
        ["EPSG:32660", "EPSG:32601", "EPSG:4326", "EPSG:3857", "EPSG:6933"],
    ),
}
#: Target CRSs whose x wraps around the world (cylindrical, central meridian 0): tiles across
#: 180 degrees load onto a grid that continues past the world's east edge (PROJ's ``+over``),
#: and a tile of theirs runs past it.
WRAPS_X = frozenset({"EPSG:3857", "EPSG:6933"})
#: Error threshold (source pixels) of the reference's coordinate transformation: exact to
#: rounding, as ``load`` warps, so that a grid read in chunks is the grid read whole. (GDAL's
#: default 0.125 interpolates the transformation along each warp's rows, which moves nearest
#: pixels near a source pixel's edge, and kernels' samples, between chunkings.)
EXACT_TOLERANCE = 1e-9
#: Interpolating kernels, drawn up- and downsampling. GDAL sizes them by a scale (XSCALE/YSCALE)
#: it derives from each warp's source window; ``load`` and the reference both state the scale
#: of the pixels instead (see ``kernel_scale``), so that every chunk uses the kernel of the grid.
#: Average states it too: GDAL skips an output pixel whose corner lies more than
#: ``2 * ceil(1 / scale)`` source pixels outside the source, so a derived scale made a pixel
#: that a tile's corner barely reaches valid in some chunkings and empty in others.
KERNEL_METHODS = ("bilinear", "cubic")
METHODS = ["nearest", "nearest", "average", *KERNEL_METHODS]
DTYPES = {"uint8": 255, "uint16": 0, "int16": -9999, "float32": -9999.0}


@dataclass(frozen=True)
class Case:
    """One drawn source grid and target request."""

    site: str
    src_crs: str
    src_res: float
    shape: tuple[int, int]
    dtype: str
    nodata: bool
    tiles: int
    overlap: tuple[float, float]
    dst_crs: str
    pixels: int
    aspect: float
    bbox_frac: tuple[float, float, float, float] | None
    method: str
    seed: int = 0
    #: output chunk size (None: one chunk), so that a grid is read in several pieces
    chunks: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@st.composite
def cases(draw: Any, chunked_nearest: bool = False, chunked: str | None = None) -> Case:
    """A source grid and a target request; ``chunked_nearest``: a nearest request read in
    chunks of 5 or 16 pixels; ``chunked``: a request with that method read in such chunks."""
    if chunked_nearest:
        chunked = "nearest"
    site = draw(st.sampled_from(sorted(SITES)))
    crss = SITES[site][1]
    src_crs = draw(st.sampled_from(crss))
    geographic = CRS.from_user_input(src_crs).is_geographic
    src_res = draw(st.sampled_from([0.0001, 0.0002, 0.0005] if geographic else [10.0, 20.0, 60.0]))
    h = draw(st.integers(8, 64))
    w = draw(st.integers(8, 64))
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    nodata = draw(st.booleans())
    tiles = draw(st.integers(1, 2))
    overlap = (
        draw(st.sampled_from([0.0, 0.25, 0.5, 0.8])),
        draw(st.sampled_from([-0.3, 0.0, 0.3])),
    )
    dst_crs = draw(st.sampled_from(crss))
    pixels = draw(st.integers(3, 48))
    aspect = draw(st.sampled_from([1.0, 1.0, 0.5, 2.0]))
    bbox = draw(
        st.none()
        | st.tuples(
            st.sampled_from([0.0, 0.2, 0.4]),
            st.sampled_from([0.0, 0.3]),
            st.sampled_from([0.6, 0.9, 1.0]),
            st.sampled_from([0.7, 1.0]),
        )
    )
    method = chunked if chunked else draw(st.sampled_from(METHODS))
    seed = draw(st.integers(0, 2**16))
    # A method read in chunks only is drawn by ``chunked`` (so that the draws of the other
    # cases stay as they were).
    if chunked:
        chunks = draw(st.sampled_from([5, 16]))
    else:
        chunks = draw(st.sampled_from([None, 5, 16])) if method in KERNEL_METHODS else None
    return Case(
        site, src_crs, src_res, (h, w), dtype, nodata, tiles, overlap, dst_crs, pixels, aspect,
        bbox, method, seed, chunks,
    )  # fmt: skip


def _write(path: Path, data: np.ndarray, crs: str, transform: Affine, nodata: Any) -> None:
    profile = {
        "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
        "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata,
    }  # fmt: skip
    with MemoryFile() as mem, mem.open(**profile) as tmp:
        tmp.write(data, 1)
        rasterio.shutil.copy(
            tmp, path, driver="COG", blocksize=256, compress="DEFLATE", overviews="NONE"
        )


def _item(name: str, href: str, crs: str, t: Affine, shape: tuple[int, int], **kw: Any) -> dict:
    from .helpers import item_dict

    return item_dict(name, href, crs, t, shape, "2024-05-01T10:00:00Z", **kw)


def _sources(case: Case, root: Path) -> list[tuple[Path, Affine]]:
    """Write the case's tiles; returns (path, transform) per tile."""
    (lon, lat), _ = SITES[case.site]
    x, y = Transformer.from_crs("EPSG:4326", case.src_crs, always_xy=True).transform(lon, lat)
    r = case.src_res
    h, w = case.shape
    x0 = math.floor(x / r) * r - (w // 2) * r
    y0 = math.floor(y / r) * r + (h // 2) * r
    rng = np.random.default_rng(case.seed)
    nd = DTYPES[case.dtype] if case.nodata else None
    out = []
    for k in range(case.tiles):
        dx = round(case.overlap[0] * w) * r * k
        dy = round(case.overlap[1] * h) * r * k
        t = Affine(r, 0, x0 + dx, 0, -r, y0 - dy)
        if case.dtype == "float32":
            data = rng.uniform(-50, 400, (h, w)).astype("float32")
        else:
            lo = 0 if case.dtype.startswith("u") else -500
            data = rng.integers(lo + 1, 200 if case.dtype == "uint8" else 3000, (h, w))
            data = data.astype(case.dtype)
        if nd is not None:  # a block of nodata in each tile
            data[h // 4 : h // 2, w // 3 : w // 2] = nd
        path = root / f"t{k}.tif"
        _write(path, data, case.src_crs, t, nd)
        out.append((path, t))
    return out


def over(crs: str) -> RioCRS:
    """``crs`` with PROJ's ``+over``: x continues past the world's edge."""
    return RioCRS.from_proj4(CRS.from_user_input(crs).to_proj4() + " +over")


def _lonlat_outline(crs: str, box: tuple[float, ...], n: int = 51) -> tuple[Any, Any]:
    """Longitudes (unwrapped across 180) and latitudes of ``n`` points per edge of a box."""
    left, bottom, right, top = box
    t = np.linspace(0, 1, n)
    xs = np.concatenate([left + (right - left) * t, left + (right - left) * t,
                         np.full(n, left), np.full(n, right)])  # fmt: skip
    ys = np.concatenate([np.full(n, bottom), np.full(n, top),
                         bottom + (top - bottom) * t, bottom + (top - bottom) * t])  # fmt: skip
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    lon = np.asarray(lon)
    if lon.max() - lon.min() > 180:
        lon = np.where(lon < 0, lon + 360, lon)
    return lon, np.asarray(lat)


def bounds(src: str, dst: str, box: tuple[float, ...]) -> tuple[float, ...]:
    """A box's bounds in ``dst``: densified edges, an antimeridian crossing east of 180 (for a
    ``WRAPS_X`` target through longitudes past 180, projected with ``+over``)."""
    if dst in WRAPS_X:
        lon, lat = _lonlat_outline(src, box)
        over_dst = CRS.from_proj4(CRS.from_user_input(dst).to_proj4() + " +over")
        x, y = Transformer.from_crs("EPSG:4326", over_dst, always_xy=True).transform(lon, lat)
        return (min(x), min(y), max(x), max(y))
    b = transform_bounds(src, dst, *box, densify_pts=51)
    if b[0] > b[2]:  # rasterio reports an antimeridian crossing as west > east
        b = (b[0], b[1], b[2] + 360.0, b[3])
    return b


def footprint(case: Case, tiles: list[tuple[Path, Affine]], dst: str) -> tuple[float, ...]:
    """The union of the tiles' bounds in ``dst`` (densified edges, antimeridian unwrapped)."""
    h, w = case.shape
    boxes = []
    for _, t in tiles:
        left, top = t.c, t.f
        right, bottom = left + w * t.a, top + h * t.e
        boxes.append(bounds(case.src_crs, dst, (left, bottom, right, top)))
    arr = np.asarray(boxes)
    if CRS.from_user_input(dst).is_geographic and arr[:, 2].max() - arr[:, 0].min() > 180:
        west = arr[:, 2] <= 0
        arr[west, 0] += 360
        arr[west, 2] += 360
    if dst in WRAPS_X:
        to_dst = Transformer.from_crs("EPSG:4326", dst, always_xy=True)
        period = 2 * abs(to_dst.transform(180, 0)[0])
        if arr[:, 2].max() - arr[:, 0].min() > period / 2:
            west = arr[:, 2] <= 0
            arr[west, 0] += period
            arr[west, 2] += period
    return (arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max())


def request(case: Case, tiles: list[tuple[Path, Affine]]) -> dict[str, Any]:
    """The keyword arguments of ``load``: crs, resolution, bbox, resampling."""
    foot = footprint(case, tiles, case.dst_crs)
    extent = foot
    bbox = None
    if case.bbox_frac is not None:
        ll = footprint(case, tiles, "EPSG:4326")
        fx0, fy0, fx1, fy1 = case.bbox_frac
        bw, bh = ll[2] - ll[0], ll[3] - ll[1]
        bbox = (ll[0] + fx0 * bw, ll[1] + fy0 * bh, ll[0] + fx1 * bw, ll[1] + fy1 * bh)
        extent = None
    span = max(foot[2] - foot[0], foot[3] - foot[1])
    res = float(f"{span / case.pixels:.3g}")
    if bbox is not None:  # at least two pixels across the bbox on each axis
        b = bounds("EPSG:4326", case.dst_crs, bbox)
        small = min(b[2] - b[0], (b[3] - b[1]) / case.aspect) / 2
        res = min(res, float(f"{small:.3g}"))
    if case.method == "average":  # on the source's own pixels a read copies them: see nearest
        h, w = case.shape
        native = max((foot[2] - foot[0]) / w, (foot[3] - foot[1]) / h)
        if abs(res / native - 1) < 0.15:
            res = float(f"{native * 1.5:.3g}")
    resolution: Any = res if case.aspect == 1.0 else (res, float(f"{res * case.aspect:.3g}"))
    return {
        "crs": case.dst_crs,
        "resolution": resolution,
        "bbox": bbox,
        "resampling": case.method,
        "_extent": extent,
    }


def kernel_scale(case: Case, src_transform: Affine, transform: Affine) -> dict[str, str]:
    """GDAL's ``XSCALE``/``YSCALE`` of a tile on the grid: output pixels per source pixel.

    Without them GDAL derives the scale of an interpolating kernel from the source window of
    the warp, clamped at the source's right and bottom edges: a tile that covers half of the
    grid would get twice the scale, a kernel half as wide. The reference states the scale of
    the pixels themselves (GDAL's formula for one output pixel at the tile's centre), which is
    what a whole-grid warp of a source larger than the grid uses. For average the scale only
    sets how far outside the source a corner of an output pixel may lie before GDAL skips the
    pixel (``2 * ceil(1 / scale)`` source pixels): at the pixels' scale, no pixel that
    overlaps the source.
    """
    h, w = case.shape
    cx, cy = w / 2, h / 2
    pts = [src_transform * p for p in ((cx, cy), (cx + 1, cy), (cx, cy + 1))]
    # x of Web Mercator and EASE-Grid 2.0 past the world's edge: longitudes past 180 (+over)
    src, dst = (
        CRS.from_proj4(CRS.from_user_input(c).to_proj4() + " +over") if c in WRAPS_X else c
        for c in (case.src_crs, case.dst_crs)
    )
    to_dst = Transformer.from_crs(src, dst, always_xy=True)
    xs, ys = to_dst.transform([p[0] for p in pts], [p[1] for p in pts])
    jac = np.array([[xs[1] - xs[0], xs[2] - xs[0]], [ys[1] - ys[0], ys[2] - ys[0]]])
    inv = np.abs(np.linalg.inv(jac))
    a, e = abs(transform.a), abs(transform.e)
    return {
        "XSCALE": repr(float(1 / (inv[0, 0] * a + inv[0, 1] * e))),
        "YSCALE": repr(float(1 / (inv[1, 0] * a + inv[1, 1] * e))),
    }


#: Shift, in source pixels, of a grid in the tiles' CRS (``off_ties``), as ``load`` does.
TIE_SHIFT = 1e-6


def off_ties(t: Affine, src: Affine) -> Affine:
    """A grid in the tiles' CRS moved ``TIE_SHIFT`` source pixels right and down.

    Such grids put pixel centres and edges exactly on source pixel edges and centres (10 m on
    20 m, 0.0001 degrees on 0.0002), where GDAL decides by the rounding of its own arithmetic:
    which source pixel is nearest, whether a kernel centred on a tile's edge is valid, and its
    kernels take another branch exactly on a source pixel's centre (a cubic value 1556.5 there and
    1578.8 a billionth of a pixel away). ``load`` moves such grids by far more than a rounding
    error, so that ties go one way in every chunk (right and down), and so does the reference
    (nearest and the kernels; not average, see ``covers``)."""
    return Affine(t.a, t.b, t.c + TIE_SHIFT * abs(src.a), t.d, t.e, t.f - TIE_SHIFT * abs(src.e))


#: Overlap, in source pixels, below which an output pixel does not cover a source pixel.
COVER_MIN = 1e-6


def covers(valid: np.ndarray, src: Affine, t: Affine, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of a grid in the tile's CRS that cover a valid pixel of the tile by more than
    ``COVER_MIN`` source pixels on each axis. GDAL's average also counts a pixel that only
    touches the tile's top or left edge (or a nodata area's) to 1e-10 source pixels, less
    than one rounding step of large coordinates; ``load`` does not, in any chunk."""
    h, w = shape
    out = np.zeros(shape, bool)
    ys = (t.f + np.arange(h + 1) * t.e - src.f) / src.e
    xs = (t.c + np.arange(w + 1) * t.a - src.c) / src.a
    for i in range(h):
        lo_y = max(0, math.floor(min(ys[i], ys[i + 1]) + COVER_MIN))
        hi_y = min(valid.shape[0], math.ceil(max(ys[i], ys[i + 1]) - COVER_MIN))
        for j in range(w):
            lo_x = max(0, math.floor(min(xs[j], xs[j + 1]) + COVER_MIN))
            hi_x = min(valid.shape[1], math.ceil(max(xs[j], xs[j + 1]) - COVER_MIN))
            out[i, j] = hi_y > lo_y and hi_x > lo_x and bool(valid[lo_y:hi_y, lo_x:hi_x].any())
    return out


def reference(
    case: Case, tiles: list[tuple[Path, Affine]], transform: Affine, shape: tuple[int, int]
) -> np.ndarray:
    """GDAL's warper on every tile onto the whole grid, first valid pixel wins (``_warp_exact``:
    an exact transformation; the scale of the pixels and the whole tile as the source window
    for every method but nearest).

    A tile with nodata is warped with its nodata pixels as NaN; a tile without is warped without
    a source mask (GDAL resamples it up to the raster's edge, without renormalising the kernel
    there), its coverage taken from a destination alpha band.
    """
    out = np.full(shape, np.nan)
    method = Resampling[case.method]
    for path, _ in tiles:
        with rasterio.open(path) as src:
            data = src.read(1).astype("float64")
            kw: dict[str, Any] = {
                "src_transform": src.transform,
                "src_crs": src.crs,
                "dst_transform": off_ties(transform, src.transform)
                if case.src_crs == case.dst_crs and case.method != "average"
                else transform,
                "dst_crs": case.dst_crs,
                "resampling": method,
            }
            if case.method != "nearest":
                kw.update(kernel_scale(case, src.transform, transform))
                # the whole tile as the source window: GDAL pads the window it computes from
                # the grid by less than a widened kernel's radius, so a kernel at the edge of a
                # grid that cuts a tile would be cut off at the window's edge
                kw["SOURCE_EXTRA"] = str(max(src.width, src.height))
            if src.nodata is not None:
                data[data == src.nodata] = np.nan
            dst = _warp_exact(data, src.nodata is not None, kw, shape)
            if case.method == "average" and case.src_crs == case.dst_crs:
                dst[~covers(~np.isnan(data), src.transform, transform, shape)] = np.nan
        fill = np.isnan(out) & ~np.isnan(dst)
        out[fill] = dst[fill]
    if case.dtype != "float32":  # GDAL resamples integers in their type: clamped to its range
        info = np.iinfo(case.dtype)
        out = np.clip(out, info.min, info.max)
    return out


def _warp_exact(
    data: np.ndarray, nodata: bool, kw: dict[str, Any], shape: tuple[int, int]
) -> np.ndarray:
    """GDAL's warper with an exact transformation (``EXACT_TOLERANCE``) of float64 ``data``
    (NaN where ``nodata``) onto the grid, NaN outside: every method is then the same whether a
    grid is warped whole or in chunks. ``reproject`` always approximates the transformation
    (0.125 source pixels), so this goes through a ``WarpedVRT``."""
    profile = {
        "driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
        "dtype": "float64", "crs": kw["src_crs"], "transform": kw["src_transform"],
        "nodata": np.nan if nodata else None,
    }  # fmt: skip
    src_crs = kw["src_crs"]
    left = kw["src_transform"].c
    right = left + data.shape[1] * kw["src_transform"].a
    dst_crs = kw["dst_crs"]
    wraps = dst_crs in WRAPS_X
    if wraps:  # pixels past the world's east edge are longitudes past 180
        dst_crs = over(dst_crs)
    if src_crs.is_geographic and (max(abs(left), abs(right)) > 180 or wraps):
        # as GDAL's warper on a dataset does (its CENTER_LONG): longitudes around the tile's
        # centre, so that pixels east of 180 find the part of the tile past 180
        src_crs = RioCRS.from_proj4(f"{src_crs.to_proj4()} +lon_wrap={(left + right) / 2}")
    elif f"EPSG:{src_crs.to_epsg()}" in WRAPS_X:
        edge = abs(Transformer.from_crs("EPSG:4326", src_crs, always_xy=True).transform(180, 0)[0])
        if max(abs(left), abs(right)) > edge:
            # a tile past the world's edge: the same cylindrical CRS with its central meridian
            # at the tile's centre and the false easting that keeps the tile's coordinates
            centre = (left + right) / 2
            lon = centre / edge * 180
            src_crs = RioCRS.from_proj4(
                f"{CRS.from_user_input(src_crs.to_wkt()).to_proj4()} +lon_0={lon} "
                f"+x_0={centre}".replace("+lon_0=0 ", "").replace("+x_0=0 ", "")
            )
    vrt_kw = {
        "src_crs": src_crs, "crs": dst_crs, "transform": kw["dst_transform"],
        "width": shape[1], "height": shape[0], "resampling": kw["resampling"],
        "tolerance": EXACT_TOLERANCE,
        **{k: kw[k] for k in ("XSCALE", "YSCALE", "SOURCE_EXTRA") if k in kw},
    }  # fmt: skip
    with MemoryFile() as mem:
        with mem.open(**profile) as tmp:
            tmp.write(data, 1)
        with mem.open() as tmp:
            if nodata:
                with WarpedVRT(tmp, src_nodata=np.nan, nodata=np.nan, **vrt_kw) as vrt:
                    return vrt.read(1)
            with WarpedVRT(tmp, add_alpha=True, **vrt_kw) as vrt:
                both = vrt.read()
    return np.where(both[1] > 0, both[0], np.nan)


def check(case: Case) -> dict[str, Any]:
    """Run one case; raises AssertionError with the details when load disagrees."""
    import eotoolkit

    with tempfile.TemporaryDirectory(prefix="gridcase-") as tmp:
        root = Path(tmp)
        tiles = _sources(case, root)
        items = [
            _item(f"t{k}", str(p), case.src_crs, t, case.shape, dtype=case.dtype, nodata=None)
            for k, (p, t) in enumerate(tiles)
        ]
        req = request(case, tiles)
        extent = req.pop("_extent")
        ds = eotoolkit.load(
            items, bands="B04", dtype="float64", groupby="time", chunks=case.chunks, **req
        )
        got = ds["B04"].isel(time=0).compute(scheduler="synchronous").values
        if case.chunks is not None:
            _check_whole(case, items, req, got)
        rx, ry = (
            (req["resolution"],) * 2 if isinstance(req["resolution"], float) else req["resolution"]
        )
        t = ds.rio.transform()
        _check_grid(case, ds, t, rx, ry, extent, req["bbox"])
        ref = reference(case, tiles, t, got.shape)
    mask_got, mask_ref = np.isnan(got), np.isnan(ref)
    diff = int((mask_got != mask_ref).sum())
    assert diff == 0, f"{diff} of {got.size} pixels differ in validity ({case})"
    both = ~mask_got
    if case.method == "nearest":
        bad = int((got[both] != ref[both]).sum())
        assert bad == 0, f"{bad} of {int(both.sum())} nearest pixels differ ({case})"
    else:
        tol = KERNEL_TOLERANCE if case.method in KERNEL_METHODS else TOLERANCE
        np.testing.assert_allclose(got[both], ref[both], **tol, err_msg=str(case))
    return {"shape": got.shape, "valid": int(both.sum())}


def _check_whole(case: Case, items: list[dict], req: dict[str, Any], got: np.ndarray) -> None:
    """A grid read in chunks has the valid pixels of the grid read whole and its values:
    nearest bit for bit, the others within ``TOLERANCE`` (GDAL computes each pixel's source
    coordinates from the warp's own origin, which moves them by a rounding error: integer
    averages on a half can round the other way)."""
    import eotoolkit

    whole = eotoolkit.load(items, bands="B04", dtype="float64", groupby="time", **req)
    one = whole["B04"].isel(time=0).compute(scheduler="synchronous").values
    flips = np.isnan(got) != np.isnan(one)
    assert not flips.any(), (
        f"{int(flips.sum())} of {got.size} pixels differ in validity from the grid read whole, "
        f"at {np.argwhere(flips)[:5].tolist()} ({case})"
    )
    both = ~np.isnan(got)
    if case.method == "nearest":
        bad = got[both] != one[both]
        assert not bad.any(), (
            f"{int(bad.sum())} of {int(both.sum())} nearest pixels differ from the grid read "
            f"whole ({case})"
        )
    else:
        np.testing.assert_allclose(got[both], one[both], **TOLERANCE, err_msg=f"whole: {case}")


def _check_grid(
    case: Case, ds: Any, t: Affine, rx: float, ry: float, extent: Any, bbox: Any
) -> None:
    assert ds["B04"].dims == ("time", "y", "x")
    assert ds["x"].ndim == 1 and ds["y"].ndim == 1
    assert ds.rio.crs is not None
    assert CRS.from_user_input(ds.rio.crs.to_wkt()) == CRS.from_user_input(case.dst_crs)
    assert math.isclose(t.a, rx, rel_tol=1e-9) and math.isclose(t.e, -ry, rel_tol=1e-9), t
    assert t.b == 0 and t.d == 0
    for edge, r in ((t.c, rx), (t.f, ry)):
        k = edge / r
        assert abs(k - round(k)) < 1e-6, f"grid edge {edge} not on a multiple of {r}"
    h, w = ds.sizes["y"], ds.sizes["x"]
    grid = (t.c, t.f - h * ry, t.c + w * rx, t.f)
    if extent is None:  # a bbox: the grid is the bbox in the target CRS, snapped outwards
        return
    tol = 1e-6 * max(rx, ry)
    assert grid[0] <= extent[0] + rx * 0.02 + tol and grid[1] <= extent[1] + ry * 0.02 + tol, (
        grid,
        extent,
    )
    assert grid[2] >= extent[2] - rx * 0.02 - tol and grid[3] >= extent[3] - ry * 0.02 - tol, (
        grid,
        extent,
    )
    assert grid[0] > extent[0] - rx - tol and grid[2] < extent[2] + rx + tol, (grid, extent)
    assert grid[1] > extent[1] - ry - tol and grid[3] < extent[3] + ry + tol, (grid, extent)
