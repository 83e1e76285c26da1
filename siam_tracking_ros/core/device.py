"""Device and precision selection: one place that turns a user's device and precision strings
into a ``torch.device`` and a model ``torch.dtype``."""
from __future__ import annotations

import functools
import os
import re
import warnings
from pathlib import Path

import torch

_DEVICE_PATTERN = re.compile(r'^(auto|cpu|cuda(:\d+)?)$')

PRECISIONS = ('fp32', 'bf16', 'fp16', 'auto')
PRECISION_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# /proc/cpuinfo flags of CPUs with native bfloat16 arithmetic (AVX-512 BF16 dot products or AMX
# tiles): on others torch emulates bf16, slower than float32.
BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
CPUINFO = Path('/proc/cpuinfo')


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


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (its flags show AVX-512 BF16 or AMX BF16)."""
    try:
        flags = CPUINFO.read_text(errors='replace').split()
    except OSError:  # not Linux, or /proc unreadable: assume no native bf16
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def check_precision(precision) -> str:
    """The normalised precision name; ValueError naming the choices for anything else."""
    text = precision.strip().lower() if isinstance(precision, str) else precision
    if text not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)} "
                         "(auto: fp16 on CUDA, bf16 on a CPU with native bf16, fp32 otherwise)")
    return text


def resolve_precision(precision: str, device: torch.device) -> str:
    """Resolve a precision name for ``device`` to ``'fp32' | 'bf16' | 'fp16'``.

    ``'auto'`` is fp16 on CUDA, bf16 on a CPU that has native bf16 (``cpu_supports_bf16``) and
    fp32 otherwise. fp16 is a GPU format: asked for on the CPU it runs in fp32 with a warning
    (the CPU's reduced precision is bf16). bf16 is honoured where asked, even where it is emulated.
    """
    precision = check_precision(precision)
    if precision == 'auto':
        if device.type == 'cuda':
            return 'fp16'
        return 'bf16' if device.type == 'cpu' and cpu_supports_bf16() else 'fp32'
    if precision == 'fp16' and device.type != 'cuda':
        warnings.warn('precision fp16 is ignored on CPU: running in float32 (use bf16 on a CPU)',
                      stacklevel=3)
        return 'fp32'
    return precision


def precision_dtype(precision: str) -> torch.dtype:
    """``torch.dtype`` of a resolved precision name (``'fp32' | 'bf16' | 'fp16'``)."""
    return PRECISION_DTYPES[precision]


def legacy_half_precision(precision: str, half: bool, device: torch.device) -> str:
    """Precision name once the older ``half`` flag (an alias of ``precision='fp16'``) is applied.

    ``half=True`` means fp16 on CUDA; on the CPU it is ignored with a warning, as it always was.
    """
    if not half:
        return precision
    if device.type != 'cuda':
        warnings.warn(f'half=True is ignored on CPU: running in precision {precision}',
                      stacklevel=4)
        return precision
    return 'fp16'


def available_cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_cpu_threads(threads: int = 0) -> int:
    """Set torch's intra-op thread count for the calling thread (and threads it starts later);
    0 means one per available core. Returns the count set.

    torch keeps this count per thread, so it is set in the thread that runs the network.
    """
    if threads < 0:
        raise ValueError(f'threads must be 0 (one per core) or more, got {threads}')
    count = threads or available_cpu_count()
    torch.set_num_threads(count)
    return count
