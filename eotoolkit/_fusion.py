"""Fusion of a block's own tasks into the task that consumes it.

A reduction over time (a composite) takes several time blocks of the same spatial chunk. When
every block of its input is made by a chain of tasks of its own (``load``'s read tasks and
element-wise operations over them: masks, band arithmetic, indices), the reduction's task can
run those chains itself: one task per output chunk and period instead of one per band, date and
operation. The scheduler then sees a few tasks per output chunk, and the pixels are the same,
made by the same functions.

An input whose blocks share tasks (a broadcast array, a rechunk, a selection across blocks) is
not fused: its graph is used as it is. Dask's config key ``eotoolkit.fuse`` (default true) set
to false turns fusion off, e.g. to watch every read in the dashboard.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import dask
import dask.array as da
import dask.core
import numpy as np
from dask.blockwise import Blockwise
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from ._graph import ReadTasks

Key = tuple[Hashable, ...]


def _blockwise_is_narrow(layer: Blockwise) -> bool:
    """True when each output block of ``layer`` takes the same block of each of its inputs."""
    if layer.new_axes or layer.output_blocks is not None:
        return False
    out = layer.output_indices
    shape = tuple(layer.dims.get(i) for i in out)
    for name, ind in layer.indices:
        if ind is None:  # a literal, or a task of its own that every block would share
            if not isinstance(name, str | int | float | bool | type(None)):
                return False
            continue
        if tuple(ind) != out or tuple(layer.numblocks.get(str(name), ())) != shape:
            return False
    return True


def fusable(array: da.Array) -> bool:
    """True when every block of ``array`` is made from tasks of its own only: ``load``'s reads
    and block-by-block (element-wise) operations."""
    if not dask.config.get("eotoolkit.fuse", True):
        return False
    graph = array.__dask_graph__()
    if not isinstance(graph, HighLevelGraph) or array.name not in graph.layers:
        return False
    for layer in graph.layers.values():
        if isinstance(layer, Blockwise):
            if not _blockwise_is_narrow(layer):
                return False
        elif not (isinstance(layer, MaterializedLayer) and isinstance(layer.mapping, ReadTasks)):
            return False
    return True


class BlockChains:
    """The tasks each block of a ``fusable`` array is made from, collected when asked for."""

    def __init__(self, array: da.Array) -> None:
        graph = array.__dask_graph__()
        assert isinstance(graph, HighLevelGraph)
        self.layers = graph.layers

    def _layer(self, key: object) -> Any:
        """The layer that holds ``key``: an array's keys are named after their layer."""
        name = key[0] if isinstance(key, tuple) and key else key
        layer = self.layers.get(name) if isinstance(name, str) else None
        if layer is not None and key in layer:
            return layer
        return None

    def __contains__(self, key: object) -> bool:
        return self._layer(key) is not None

    def _task(self, key: Key) -> Any:
        layer = self._layer(key)
        if layer is None:
            raise KeyError(key)
        return layer[key]

    def of(self, key: Key) -> dict[Key, Any]:
        """The tasks that make block ``key``, itself included."""
        tasks: dict[Key, Any] = {}
        todo = [key]
        while todo:
            k = todo.pop()
            if k in tasks:
                continue
            task = self._task(k)
            tasks[k] = task
            todo.extend(dask.core.keys_in_tasks(cast(Any, self), [task]))
        return tasks


@dataclass(frozen=True)
class Chains:
    """Blocks to make inside one task: each block's key and the tasks that make it."""

    blocks: tuple[tuple[Key, dict[Key, Any]], ...]

    def compute(self) -> list[np.ndarray]:
        """Every block, one after the other, keeping only the finished blocks in memory."""
        return [dask.core.get(tasks, [key])[0] for key, tasks in self.blocks]


def chains(source: BlockChains, keys: Sequence[Key]) -> Chains:
    """``Chains`` of the blocks ``keys`` of ``source``'s array."""
    return Chains(tuple((key, source.of(key)) for key in keys))
