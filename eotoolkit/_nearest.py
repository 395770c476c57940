"""Nearest onto a grid in another CRS without GDAL's warper: every output pixel takes the source
pixel its centre falls in, as GDAL's warper with an exact coordinate transformation picks it.


The source position of each pixel centre is interpolated from exactly transformed points on a
lattice of the chunk (bilinear: a small matrix product along rows, then a blend of lattice
rows), after the interpolation error has been measured at the lattice cells' centres and edge
midpoints and found ten times below ``EDGE_MARGIN``. Pixels whose interpolated position lies
within ``EDGE_MARGIN`` source pixels of a source pixel's edge are transformed exactly; every
other pixel, its position off by far less than its distance to an edge, lies in the pixel its
exact position lies in, so the result is the exact warp's in any chunking. Points are
transformed by GDAL's own coordinate transformation (the warper's PROJ: another PROJ version
can place a point a fraction of a millimetre away). Where the error stays above the margin's
share on the finest lattice, or a point fails, the chunk is left to GDAL's warper.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

#: Distance, in source pixels, from a source pixel's edge within which a pixel's position is
#: transformed exactly instead of interpolated.
EDGE_MARGIN = 1e-3
#: Largest interpolation error, in source pixels, measured on the lattice that the margin
#: accepts: a tenth of it, for the error between the points measured.
MAX_ERROR = EDGE_MARGIN / 10
#: Output pixels between lattice points at first; a lattice whose error is too large is made
#: finer by the square root of the excess (the error of linear interpolation grows with the
#: square of the spacing), down to ``FINEST``; below it the chunk is left to GDAL's warper.
COARSEST = 32
FINEST = 3
#: Output pixels whose positions are computed at once (the positions of a larger chunk are
#: computed in strips of rows, to bound the memory they take).
STRIP_PIXELS = 1 << 20
#: GDAL's warper takes source pixel ``int(x + 1e-10)`` for position ``x``.
_GDAL_EPS = 1e-10


def _lattice(n: int, step: int) -> np.ndarray:
    """Pixel indices of lattice points along an axis of ``n`` pixels: every ``step``-th and
    the last."""
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _weights(n: int, points: np.ndarray) -> np.ndarray:
    """(n, len(points)) linear interpolation weights of pixels 0..n-1 from values at
    ``points`` (two per row; at least two points)."""
    out = np.zeros((n, len(points)))
    k, t = _segments(n, points)
    rows = np.arange(n)
    out[rows, k] = 1.0 - t
    out[rows, k + 1] = t
    return out


def _segments(n: int, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For pixels 0..n-1: the lattice segment each lies in and its position along it."""
    k = np.clip(np.searchsorted(points, np.arange(n), side="right") - 1, 0, len(points) - 2)
    return k, (np.arange(n) - points[k]) / (points[k + 1] - points[k])


def _interpolate(
    values: np.ndarray, wx: np.ndarray, rows: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Lattice values interpolated onto every pixel of a chunk, flat: along rows by one small
    matrix product with the columns' weights ``wx``, then between the lattice rows each pixel
    row lies in (``rows``: ``_segments`` of the lattice rows)."""
    along = values @ wx.T  # (lattice rows, w)
    k, t = rows
    t = t[:, None]
    out = along[k] * (1.0 - t)
    out += along[k + 1] * t
    return out.ravel()


#: Coordinates from the output's CRS to the source's: (xs, ys) -> (xs, ys); raises where a point
#: cannot be transformed.
Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class _Positions:
    """Source pixel positions (column, row) of output pixel centres, exact to rounding."""

    def __init__(self, dst: Affine, transform: Transform, src: Affine) -> None:
        self.dst, self.transform, self.inv = dst, transform, ~src

    def exact(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the pixels at (rows, cols), each transformed."""
        d, s = self.dst, self.inv
        px, py = cols + 0.5, rows + 0.5
        x = d.c + px * d.a + py * d.b
        y = d.f + px * d.d + py * d.e
        x, y = self.transform(x, y)
        return s.c + x * s.a + y * s.b, s.f + x * s.d + y * s.e

    def interpolated(
        self, shape: tuple[int, int], step: int
    ) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Positions of every pixel interpolated from a lattice every ``step`` pixels and the
        largest error measured, None when a point fails."""
        h, w = shape
        ly, lx = _lattice(h, step), _lattice(w, step)
        # the lattice and the checks, transformed at once: the cells' centres and the midpoints
        # of their edges
        my = np.unique(np.concatenate([ly, (ly[:-1] + ly[1:]) // 2]))
        mx = np.unique(np.concatenate([lx, (lx[:-1] + lx[1:]) // 2]))
        rr, cc = np.meshgrid(my.astype(float), mx.astype(float), indexing="ij")
        ex, ey = self.exact(rr.ravel(), cc.ravel())
        if not (np.isfinite(ex).all() and np.isfinite(ey).all()):
            return None
        ex, ey = ex.reshape(rr.shape), ey.reshape(rr.shape)
        on_lattice = np.ix_(np.searchsorted(my, ly), np.searchsorted(mx, lx))
        x, y = ex[on_lattice], ey[on_lattice]
        wy, wx = _weights(h, ly), _weights(w, lx)
        gx = wy[my] @ x @ wx[mx].T
        gy = wy[my] @ y @ wx[mx].T
        err = np.maximum(np.abs(gx - ex), np.abs(gy - ey))
        if err.max() > MAX_ERROR:  # not used: spare the interpolation
            return x, y, float(err.max())
        rows = _segments(h, ly)
        return _interpolate(x, wx, rows), _interpolate(y, wx, rows), float(err.max())


def _near_edge(v: np.ndarray) -> np.ndarray:
    return np.abs(v - np.rint(v)) < EDGE_MARGIN


def source_positions(
    dst: Affine, shape: tuple[int, int], transform: Transform, src: Affine
) -> tuple[np.ndarray, np.ndarray] | None:
    """(columns, rows) of each output pixel centre in the source's pixels, flat, in C order:
    interpolated where the measured error keeps the pixel in the one its exact position lies
    in, exact near source pixel edges; None where no lattice is fine enough or a point fails."""
    pos = _Positions(dst, transform, src)
    step = COARSEST
    try:
        while min(shape) > 2 * FINEST and step >= FINEST:
            got = pos.interpolated(shape, step)
            if got is None:
                return None
            x, y, err = got
            if err > MAX_ERROR:
                step = min(step - 1, int(step * (MAX_ERROR / err) ** 0.5 * 0.8))
                continue
            redo = np.flatnonzero(_near_edge(x) | _near_edge(y))
            if len(redo):
                rows, cols = np.divmod(redo, shape[1])
                ex, ey = pos.exact(rows.astype(float), cols.astype(float))
                if not (np.isfinite(ex).all() and np.isfinite(ey).all()):
                    return None
                x[redo], y[redo] = ex, ey
            return x, y
    except Exception:  # a point outside the projection's domain: GDAL's warper decides
        return None
    return None


#: Where each output pixel takes its source pixel: (inside the source, column, row), flat.
Pixels = tuple[np.ndarray, np.ndarray, np.ndarray]


def source_pixels(
    dst: Affine, shape: tuple[int, int], transform: Transform, src: rasterio.DatasetReader
) -> Pixels | None:
    """The source pixel each output pixel centre falls in, as GDAL's warper with an exact
    transformation picks it (``int(x + 1e-10)``; none left of or above the source); None when
    the positions cannot be interpolated (see ``source_positions``). A large chunk is done in
    strips of rows."""
    h, w = shape
    inside = np.empty(h * w, bool)
    cols = np.empty(h * w, np.intp)
    rows = np.empty(h * w, np.intp)
    strip = max(1, STRIP_PIXELS // w)
    for i in range(0, h, strip):
        n = min(strip, h - i)
        got = source_positions(dst * Affine.translation(0, i), (n, w), transform, src.transform)
        if got is None:
            return None
        x, y = got
        part = slice(i * w, (i + n) * w)
        ok = (x >= 0) & (y >= 0) & (x + _GDAL_EPS <= src.width) & (y + _GDAL_EPS <= src.height)
        inside[part] = ok
        cols[part] = np.minimum(np.where(ok, x + _GDAL_EPS, 0.0), src.width - 1)
        rows[part] = np.minimum(np.where(ok, y + _GDAL_EPS, 0.0), src.height - 1)
    return inside, cols, rows


def read_pixels(
    src: rasterio.DatasetReader, shape: tuple[int, int], pixels: Pixels, nodata: float | None
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The source's ``pixels`` as a ``shape`` chunk, read as one window: (values, valid mask,
    or None when ``nodata`` tells the invalid ones, which hold ``nodata``), None when no pixel
    falls on the source. Elsewhere pixels hold ``nodata`` (0 without)."""
    inside, cols, rows = pixels
    if not inside.any():
        return None
    cols, rows = cols[inside], rows[inside]
    c0, c1, r0, r1 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
    win = Window(c0, r0, c1 - c0, r1 - r0)
    taken = src.read(1, window=win)[rows - r0, cols - c0]
    out = np.full(inside.size, 0 if nodata is None else nodata, dtype=taken.dtype)
    out[inside] = taken
    if nodata is not None:
        return out.reshape(shape), None
    valid = np.zeros(inside.size, bool)
    valid[inside] = src.read_masks(1, window=win)[rows - r0, cols - c0] > 0
    out[~valid] = 0
    return out.reshape(shape), valid.reshape(shape)
