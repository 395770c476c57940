"""The first-valid mosaic of a chunk's sources, built in their own type and scaled once."""

from __future__ import annotations

import math

import numpy as np

from ._items import Source


def _valid(raw: np.ndarray, nodata: float) -> np.ndarray:
    if math.isnan(nodata):
        return ~np.isnan(raw)
    return raw != nodata


def _scale(raw: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """``raw * scale + offset`` as a new float32 array (one rounding per operation)."""
    if scale != 1.0:
        out = np.multiply(raw, np.float32(scale), dtype=np.float32, casting="unsafe")
    else:
        out = raw.astype(np.float32)
    if offset != 0.0:
        np.add(out, np.float32(offset), out=out)
    return out


class _Mosaic:
    """First-valid mosaic of raw source windows in their own dtype."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.data: np.ndarray | None = None
        self.filled = np.zeros(shape, bool)
        self.complete = False

    def add(self, raw: np.ndarray, valid: np.ndarray, where: tuple[slice, slice]) -> bool:
        """Fill the pixels still empty with the valid pixels of ``raw``; True once complete."""
        if self.data is None:
            if raw.shape == self.shape:
                self.data, self.filled = raw, valid
            else:
                self.data = np.zeros(self.shape, raw.dtype)
                self.data[where] = raw
                self.filled[where] = valid
            self.complete = bool(self.filled.all())
            return self.complete
        if raw.dtype != self.data.dtype:
            self.data = self.data.astype(np.result_type(self.data, raw))
        region = self.filled[where]
        np.copyto(self.data[where], raw, where=valid & ~region)
        region |= valid
        self.complete = bool(self.filled.all())
        return self.complete

    def result(self, dtype: str, fill: float, scale: float, offset: float) -> np.ndarray:
        """The mosaic as ``dtype`` (scaled to float when ``dtype`` is floating), ``fill`` where
        no source had a valid pixel. Called once: the mosaic's buffers are reused."""
        if self.data is None:
            return np.full(self.shape, fill, dtype=dtype)
        if np.issubdtype(np.dtype(dtype), np.floating):
            out = _scale(self.data, scale, offset)
            out = out.astype(dtype, copy=False)
        else:
            out = self.data.astype(dtype, copy=self.data.dtype != np.dtype(dtype))
        if not self.complete:
            empty = np.logical_not(self.filled, out=self.filled)
            np.copyto(out, np.asarray(fill, dtype=out.dtype), where=empty)
        return out


def _uniform_scaling(sources: tuple[Source, ...]) -> tuple[float, float] | None:
    """The (scale, offset) shared by all sources, None when they differ."""
    pairs = {(s.scale, s.offset) for s in sources}
    return pairs.pop() if len(pairs) == 1 else None
