"""Tracker registry: name -> (typed default config, builder, shipped weights file).

Tracker modules register themselves on import (``core/trackers/__init__.py`` imports them all)::

    @register_tracker('siamfc_alexnet', SiamFCConfig)
    class SiamFCTracker(SiameseTracker): ...

A builder is any callable ``builder(config, device=..., half=...) -> SiameseTracker``; a tracker
class whose ``__init__`` has that signature is one.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:  # the tracker modules import this one: no runtime import back
    from siam_tracking_ros.core.trackers.base import SiameseTracker, TrackerConfig

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / 'data' / 'weights'


@dataclass(frozen=True)
class TrackerEntry:
    name: str
    config: TrackerConfig
    builder: Callable[..., SiameseTracker]
    weights_name: str


_REGISTRY: dict[str, TrackerEntry] = {}


def register_tracker(name: str, config_cls: type[TrackerConfig], builder=None, *,
                     weights_name: str | None = None, config: TrackerConfig | None = None):
    """Register ``builder`` under ``name`` with ``config_cls()`` (or ``config``) as default.

    ``weights_name``: the registered name whose shipped weights file this tracker loads (e.g. a
    DROL variant names its base ``siamrpn_r50_l234``); defaults to ``name``. Usable as a decorator
    when ``builder`` is omitted. Registering a taken name raises ValueError.
    """
    def add(builder_fn):
        if name in _REGISTRY:
            raise ValueError(f"tracker '{name}' is already registered")
        default = config if config is not None else config_cls()
        if not dataclasses.is_dataclass(config_cls) or not isinstance(default, config_cls):
            raise ValueError(f"default config of '{name}' must be an instance of the dataclass "
                             f"{config_cls.__name__}")
        _REGISTRY[name] = TrackerEntry(name, default, builder_fn, weights_name or name)
        return builder_fn

    if builder is None:
        return add
    return add(builder)


def list_trackers() -> list[str]:
    """Registered tracker names, sorted."""
    _import_trackers()
    return sorted(_REGISTRY)


def _entry(name: str) -> TrackerEntry:
    _import_trackers()
    if name not in _REGISTRY:
        raise ValueError(f"unknown tracker '{name}'; known trackers: "
                         f"{', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def default_config(name: str) -> TrackerConfig:
    """The default (frozen) config of tracker ``name``."""
    return _entry(name).config


def shipped_weights(name: str) -> Path | None:
    """Path of the weights file the package ships for ``name`` (or its base), if present."""
    entry = _entry(name)
    for candidate in (name, entry.weights_name):
        path = WEIGHTS_DIR / f'{candidate}.pth'
        if path.is_file():
            return path
    return None


def build_tracker(name: str, weights=None, device: str | torch.device = 'auto', half: bool = False,
                  **config_overrides) -> SiameseTracker:
    """Build tracker ``name`` with ``config_overrides`` applied to its default config.

    ``weights``: a checkpoint path; None uses the shipped file for ``name`` or its base tracker,
    and when none ships the network stays randomly initialised (with a warning).
    Unknown names and unknown override fields raise ValueError.
    """
    entry = _entry(name)
    tracker = build_untrained(name, device, half, **config_overrides)
    path = Path(weights) if weights is not None else shipped_weights(name)
    if weights is not None and not path.is_file():
        raise ValueError(f"weights file '{path}' for tracker '{name}' does not exist")
    if path is None:
        warnings.warn(f"no weights ship for tracker '{name}' (looked for "
                      f"{WEIGHTS_DIR / (entry.weights_name + '.pth')}): the network is randomly "
                      'initialised and will not track', stacklevel=2)
    else:
        tracker.load_weights(path)
    return tracker


def build_untrained(name: str, device: str | torch.device = 'auto', half: bool = False,
                    **config_overrides) -> SiameseTracker:
    """Tracker ``name`` with its networks freshly initialised: no weights file is read (what
    training starts from). Files the config itself names, such as SA-Siam's ``snet_weights``,
    are still loaded by the tracker."""
    config = replace_config(_entry(name).config, **config_overrides)
    tracker = _entry(name).builder(config, device=device, half=half)
    tracker._registered_name = name
    return tracker


def replace_config(config: Any, **overrides) -> Any:
    """``dataclasses.replace`` with a clear error naming unknown fields."""
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f'unknown config field(s) {unknown} for {type(config).__name__}; '
                         f'known fields: {sorted(known)}')
    return dataclasses.replace(config, **overrides)


def _import_trackers() -> None:
    """Import the tracker modules so that their registrations run."""
    import siam_tracking_ros.core.trackers  # noqa: F401
