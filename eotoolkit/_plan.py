"""What one read of one output chunk of one band needs: the chunk's grid, the sources touching
it, and the band's read decisions (type, fill, scaling, resampling, errors, storage), made
once per band by the graph builder."""

from __future__ import annotations

from dataclasses import dataclass

from ._items import Source
from .stores.storage import S3Config


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


@dataclass(frozen=True)
class BandRead:
    """The read decisions of one band, the same for each of its chunks: the output type and its
    fill value, whether values are scaled, the resampling method, whether a failed read is an
    error, and the S3 settings of the load."""

    dtype: str
    fill: float
    scaled: bool
    resampling: str
    fail_on_error: bool
    storage: S3Config | None = None

    def options(self) -> tuple:
        """The decisions as the band's graph name hashes them."""
        token = self.storage and self.storage.token()
        return (self.dtype, self.fill, self.scaled, self.resampling, self.fail_on_error, token)

    def chunk(
        self, transform: tuple[float, float, float, float, float, float], shape: tuple[int, int],
        crs: str,
    ) -> ChunkRead:  # fmt: skip
        """The read of one chunk on ``transform`` and ``shape`` in ``crs`` (its sources are
        given per time slot, see ``_reader.read_sources``)."""
        return ChunkRead(
            transform=transform, shape=shape, crs=crs, sources=(), dtype=self.dtype,
            fill=self.fill, scaled=self.scaled, resampling=self.resampling,
            fail_on_error=self.fail_on_error, storage=self.storage,
        )  # fmt: skip
