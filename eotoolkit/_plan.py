"""What one read of one output chunk of one band needs: the chunk's grid, the sources touching
it, and the band's read decisions (type, fill, scaling, resampling, errors, storage), made
once per band by the graph builder."""

from __future__ import annotations

from dataclasses import dataclass

from ._items import Source
from .storage import S3Config


@dataclass(frozen=True)
class ChunkRead:
    """Everything needed to produce one (1, h, w) chunk of one band."""

    transform: tuple[float, float, float, float, float, float]
    shape: tuple[int, int]
    crs: str
    sources: tuple[Source, ...]
    dtype: str
    fill: float
    scaled: bool
    resampling: str
    fail_on_error: bool
    #: S3 settings of the load (None: the environment and AWS profile of the reading process)
    storage: S3Config | None = None
