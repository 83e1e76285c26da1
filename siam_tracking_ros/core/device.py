"""Device selection: one place that turns a user's device string into a ``torch.device``."""
from __future__ import annotations

import re
import warnings

import torch

_DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')


def resolve_device(device: str | torch.device = 'auto') -> torch.device:
    """Resolve ``'auto' | 'cpu' | 'cuda' | 'cuda:N'`` (or a ``torch.device``) to a usable device.

    ``'auto'`` picks ``cuda`` when available and ``cpu`` otherwise. Asking for CUDA on a machine
    without it, or for a GPU index that does not exist, raises ValueError.
    """
    if isinstance(device, torch.device):
        text = str(device)
    elif isinstance(device, str):
        text = device.strip().lower()
    else:
        raise ValueError(f"device must be a string or torch.device, got {type(device).__name__}")
    if not _DEVICE_PATTERN.match(text):
        raise ValueError(f"unknown device '{device}': use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if text == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if text == 'cpu':
        return torch.device('cpu')
    if not torch.cuda.is_available():
        raise ValueError(f"device '{text}' requested but CUDA is not available on this machine "
                         "(torch built without CUDA or no GPU visible); use 'cpu' or 'auto'")
    resolved = torch.device(text)
    count = torch.cuda.device_count()
    if resolved.index is not None and resolved.index >= count:
        raise ValueError(f"device '{text}' requested but only {count} CUDA device(s) are visible")
    return resolved


def resolve_dtype(device: torch.device, half: bool) -> torch.dtype:
    """Model dtype: float16 when ``half`` on CUDA; float32 otherwise (warns if half on CPU)."""
    if not half:
        return torch.float32
    if device.type != 'cuda':
        warnings.warn('half=True is ignored on CPU: running in float32', stacklevel=3)
        return torch.float32
    return torch.float16
