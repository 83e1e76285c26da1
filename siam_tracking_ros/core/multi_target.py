"""Several targets in one image stream, their search crops through one backbone call per frame.

``MultiTargetTracker`` keeps one per-target tracker for each target id, all siblings
(``SiameseTracker.sibling``) of one tracker built by the caller, so they share one network and
its weights. Each target's state (template, centre and size, LOST state, DROL's classifier and
short-term template, DSiam's transforms, CLNet's head deltas, SA-Siam's semantic exemplar) lives
in its own tracker, whose hooks run unchanged.

A frame runs ``SiameseTracker.track``'s stages: every target's ``prepare_frame`` (its search
crops), then the backbone once on the crops of all targets stacked along the batch dimension,
then every target's ``finish_frame`` on its own slice of the features (head, score map, locate,
LOST rule, ``on_tracked``). Crops of different sides cannot be stacked: targets whose crops share
a shape go through one call, so a LOST target with a widened search crop has a call of its own.

What is not batched: each target's head (its own template), post-processing and update, and
whatever a tracker's hooks compute beside the search features: SA-Siam's semantic branch on the
crops (``modify_score_map``), DROL's online classifier and its short-term template's head
(``locate``, ``on_tracked``), DSiam's template and region crops for learning V and W
(``on_tracked``), and all template crops at ``add``.

Each target's boxes are the ones its tracker alone would give on the same frames when the
batched backbone gives each crop's features bit for bit as a call on that target's crops alone
(test/core/test_multi_target.py checks both on real frames for every registered tracker).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import TreeSpec, tree_flatten, tree_unflatten

from siam_tracking_ros.core.trackers.base import (FrameContext, SiameseTracker, TrackResult,
                                                  validate_image)


def concat_batch(parts: Sequence[Any]) -> Any:
    """Structures of tensors (tensors, or lists / tuples / named tuples / dicts of them, nested)
    of one layout, joined along the batch dimension (dim 0) leaf by leaf."""
    if not parts:
        raise ValueError('concat_batch needs at least one part')
    flattened = [_tensor_leaves(part, 'join') for part in parts]
    layout = flattened[0][1]
    for index, (_, other) in enumerate(flattened):
        if other != layout:
            raise ValueError(f'parts differ in layout: part 0 is {_one_line(layout)}, '
                             f'part {index} is {_one_line(other)}')
    columns = zip(*(leaves for leaves, _ in flattened))
    return tree_unflatten([torch.cat(column) for column in columns], layout)


def split_batch(structure: Any, counts: Sequence[int]) -> list[Any]:
    """The inverse of ``concat_batch``: ``structure`` cut along dim 0 into ``len(counts)`` parts of
    ``counts[i]`` rows each (every leaf must have ``sum(counts)`` rows).

    Each part is a copy, not a view: a tracker keeping its features does not keep the whole
    batch alive, and its head reads a tensor of the layout a call on its own crops returns."""
    if any(count < 0 for count in counts):
        raise ValueError(f'counts must not be negative, got {list(counts)}')
    leaves, layout = _tensor_leaves(structure, 'split')
    total = sum(counts)
    for leaf in leaves:
        if leaf.shape[0] != total:
            raise ValueError(f'a leaf of {leaf.shape[0]} rows cannot be split into parts of '
                             f'{total} rows in all')
    starts = np.cumsum([0, *counts[:-1]])
    return [tree_unflatten([leaf[start:start + count].clone() for leaf in leaves], layout)
            for start, count in zip(starts.tolist(), counts)]


def _one_line(layout: TreeSpec) -> str:
    return ' '.join(str(layout).split())


def _tensor_leaves(structure: Any, verb: str) -> tuple[list[torch.Tensor], TreeSpec]:
    """``structure``'s leaves and layout; every leaf must be a tensor."""
    leaves, layout = tree_flatten(structure)
    for leaf in leaves:
        if not isinstance(leaf, torch.Tensor):
            raise ValueError(f'cannot {verb} {type(leaf).__name__} along the batch: only '
                             'tensors, lists, tuples and dicts of them')
    return leaves, layout


class MultiTargetTracker:
    """Targets by id, each with its own tracker state, tracked together frame by frame.

    ``make_tracker()`` builds the tracker every target's tracker is a sibling of (weights loaded,
    device and precision set); it is called once. ``max_targets``: how many targets may be
    tracked at once (None: no limit).
    """

    def __init__(self, make_tracker: Callable[[], SiameseTracker],
                 max_targets: int | None = None):
        if max_targets is not None and (isinstance(max_targets, bool)
                                        or not isinstance(max_targets, int) or max_targets < 1):
            raise ValueError(f'max_targets must be a positive integer or None, got {max_targets!r}')
        self.max_targets = max_targets
        self.prototype: SiameseTracker = make_tracker()
        if not isinstance(self.prototype, SiameseTracker):
            raise ValueError('make_tracker must return a SiameseTracker, got '
                             f'{type(self.prototype).__name__}')
        self._trackers: dict[str, SiameseTracker] = {}

    # ------------------------------------------------------------------ targets
    @property
    def target_ids(self) -> list[str]:
        """Ids in the order they were first added (replacing a target keeps its place)."""
        return list(self._trackers)

    def __len__(self) -> int:
        return len(self._trackers)

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._trackers

    def tracker(self, target_id: str) -> SiameseTracker:
        """The tracker of ``target_id`` (its ``state``, ``is_lost``, ``box``...)."""
        return self._trackers[self._known(target_id)]

    def add(self, target_id: str, image_bgr: np.ndarray, box) -> None:
        """Start tracking 0-based ``box`` ``(x, y, w, h)`` of ``image_bgr`` as ``target_id``,
        replacing the target of that id if there is one. A refused target (bad id, image or box,
        or one over ``max_targets``) changes nothing: ValueError says why."""
        if not isinstance(target_id, str) or not target_id:
            raise ValueError(f'target id must be a non-empty string, got {target_id!r}')
        if (target_id not in self._trackers and self.max_targets is not None
                and len(self._trackers) >= self.max_targets):
            raise ValueError(f"cannot add target '{target_id}': already tracking "
                             f"max_targets={self.max_targets} ({', '.join(self._trackers)}); "
                             'remove one first')
        tracker = self.prototype.sibling()
        try:
            tracker.init(image_bgr, box)
        except ValueError as error:
            raise ValueError(f"target '{target_id}': {error}") from error
        self._trackers[target_id] = tracker

    def remove(self, target_id: str) -> None:
        """Stop tracking ``target_id``; KeyError naming it if it is not tracked."""
        del self._trackers[self._known(target_id)]

    def clear(self) -> None:
        """Stop tracking every target."""
        self._trackers.clear()

    # ------------------------------------------------------------------ tracking
    @torch.inference_mode()
    def track(self, image_bgr: np.ndarray,
              target_ids: Iterable[str] | None = None) -> dict[str, TrackResult]:
        """One frame for every target (or those of ``target_ids``, each once): results by id,
        in the order of the ids. Nothing changes when the frame is refused (ValueError: not a
        uint8 BGR image, or another size than a target's initial frame; KeyError: unknown id)."""
        ids = self._selected(target_ids)
        image_bgr = validate_image(image_bgr)
        trackers = [self._trackers[target_id] for target_id in ids]
        for target_id, tracker in zip(ids, trackers):
            try:
                tracker.check_frame(image_bgr)
            except ValueError as error:
                raise ValueError(f"target '{target_id}': {error}") from error
        frames = [tracker.prepare_frame(image_bgr) for tracker in trackers]
        features = self.batched_features(frames)
        return {target_id: tracker.finish_frame(frame, frame_features)
                for target_id, tracker, frame, frame_features
                in zip(ids, trackers, frames, features)}

    @torch.inference_mode()
    def batched_features(self, frames: Sequence[FrameContext]) -> list[Any]:
        """``extract_features`` of each frame's crops: one backbone call on the stacked crops of
        all frames whose crops share a shape and dtype, split back per frame."""
        groups: dict[tuple, list[int]] = {}
        for index, frame in enumerate(frames):
            groups.setdefault((tuple(frame.crops.shape[1:]), frame.crops.dtype), []).append(index)
        features: list[Any] = [None] * len(frames)
        for indices in groups.values():
            crops = [frames[index].crops for index in indices]
            stacked = self.prototype.extract_features(concat_batch(crops))
            for index, part in zip(indices, split_batch(stacked, [len(c) for c in crops])):
                features[index] = part
        return features

    # ------------------------------------------------------------------ helpers
    def _known(self, target_id: str) -> str:
        if target_id not in self._trackers:
            raise KeyError(f"unknown target id '{target_id}'; tracked: "
                           f"{', '.join(self._trackers) or 'none'}")
        return target_id

    def _selected(self, target_ids: Iterable[str] | None) -> list[str]:
        if target_ids is None:
            return list(self._trackers)
        ids = list(target_ids)
        repeated = sorted({target_id for target_id in ids if ids.count(target_id) > 1})
        if repeated:
            raise ValueError(f'target ids named more than once: {", ".join(repeated)}')
        return [self._known(target_id) for target_id in ids]
