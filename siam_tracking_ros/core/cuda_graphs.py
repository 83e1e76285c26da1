"""CUDA graphs for the fixed-shape part of tracking: the backbone on the search crops.

Every frame runs the same network on crops of the same shape (one shape per search size), so on
CUDA the kernel launches of ``features(crops)`` can be recorded once as a graph and replayed: the
Python and launch overhead, which dominates small fp16 networks on a GPU, goes away.

``GraphedFeatures`` keeps one graph per input shape and dtype. A graph reads its input from and
writes its output to fixed buffers, so each call copies the crops in and returns clones of the
outputs (a caller may keep features across frames). Graphs are only used for inference (no
autograd) and are dropped by ``reset()`` (the tracker calls it whenever it re-places its model);
weights loaded in place are seen by the graphs, since they read the parameters' memory. A shape
whose capture fails runs eagerly from then on, with one warning.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch

WARMUP_RUNS = 3


def map_tensors(value: Any, function: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``value`` with ``function`` applied to every tensor in it (also inside lists, tuples
    and dicts)."""
    if isinstance(value, torch.Tensor):
        return function(value)
    if isinstance(value, (list, tuple)):
        items = [map_tensors(item, function) for item in value]
        return type(value)(*items) if hasattr(value, '_fields') else type(value)(items)
    if isinstance(value, dict):
        return {key: map_tensors(item, function) for key, item in value.items()}
    return value


class _Graph:
    def __init__(self, features: Callable, example: torch.Tensor):
        self.input = example.clone()
        stream = torch.cuda.Stream(example.device)
        stream.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(stream):  # warm-up off the default stream, as capture requires
            for _ in range(WARMUP_RUNS):
                features(self.input)
        torch.cuda.current_stream(example.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = features(self.input)

    def __call__(self, crops: torch.Tensor) -> Any:
        self.input.copy_(crops)
        self.graph.replay()
        return map_tensors(self.output, torch.Tensor.clone)


class GraphedFeatures:
    """``features(crops)`` through a CUDA graph per crop shape (CUDA only, inference only)."""

    def __init__(self, features: Callable[[torch.Tensor], Any]):
        self.features = features
        self._graphs: dict[tuple, _Graph | None] = {}

    def reset(self) -> None:
        self._graphs.clear()

    def __call__(self, crops: torch.Tensor) -> Any:
        if crops.device.type != 'cuda' or torch.is_grad_enabled():
            return self.features(crops)
        key = (tuple(crops.shape), crops.dtype, crops.device, crops.stride())
        if key not in self._graphs:
            try:
                self._graphs[key] = _Graph(self.features, crops)
            except RuntimeError as error:
                warnings.warn(f'CUDA graph capture failed for crops {tuple(crops.shape)} '
                              f'({error}); running that shape without a graph', stacklevel=2)
                self._graphs[key] = None
        graph = self._graphs[key]
        return self.features(crops) if graph is None else graph(crops)
