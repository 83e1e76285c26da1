"""Parity harness: a reference tracker (pysot, siamfc-pytorch) and the package's, side by side.

The reference code stays outside this repository: it is imported from a checkout whose path the
caller gives. Per frame the harness reports

* **free run**: both trackers track the sequence on their own from the same first-frame box; the
  deviation is the largest difference of the states ``(cx, cy, w, h)`` in pixels;
* **lockstep**: a second package tracker is set to the reference's state before every frame, so
  both start the frame from the same state; its deviation is that of one frame's step. This way
  round, the references' own state (siamfc-pytorch keeps float32) is taken exactly;
* **margin**: how close the reference came to choosing another candidate at that
  frame, ``(best - second best) / |best|`` of the values its own ``argmax`` chose from (pysot:
  ``pscore`` over all anchors; siamfc-pytorch: the smaller of the scale choice's margin and the
  margin between the two highest distinct peaks of the chosen, windowed response). A free run
  may part at a near tie, where a last-bit difference picks the other candidate.

States are compared in the package's convention: 0-based pixel-centre ``(cx, cy)`` with
``cx = x + (w - 1) / 2``, which is also the state both references keep internally.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import cv2
import numpy as np
import torch

from siam_tracking_ros.core.checkpoints import DATA_PARALLEL_PREFIX

LOCKSTEP_LIMIT_PX = 0.01
FREE_RUN_LIMIT_PX = 0.5
TIE_MARGIN = 1e-4
# A free run whose deviation exceeds the lockstep tolerance has parted (not just numerical noise).
PARTING_PX = LOCKSTEP_LIMIT_PX

# pysot experiment config of each registered tracker the pysot reference runs.
PYSOT_CONFIGS = {
    'siamrpn_alexnet': 'experiments/siamrpn_alex_dwxcorr/config.yaml',
    'siamrpn_r50_l234': 'experiments/siamrpn_r50_l234_dwxcorr/config.yaml',
}
REFERENCE_OF_TRACKER = {'siamrpn_alexnet': 'pysot', 'siamrpn_r50_l234': 'pysot',
                        'siamfc_alexnet': 'siamfc'}


@dataclass(frozen=True)
class TrackState:
    """0-based pixel-centre ``center`` ``(cx, cy)`` and ``size`` ``(w, h)``, float64."""
    center: np.ndarray
    size: np.ndarray

    def as_array(self) -> np.ndarray:
        return np.concatenate([self.center, self.size]).astype(np.float64)


def state_deviation(a: TrackState, b: TrackState) -> float:
    """Largest absolute difference of ``(cx, cy, w, h)`` in pixels."""
    return float(np.max(np.abs(a.as_array() - b.as_array())))


def relative_margin(best: float, second: float) -> float:
    """``(best - second) / |best|``; infinite when there is no second candidate."""
    if not math.isfinite(second):
        return math.inf
    return float((best - second) / abs(best)) if best != 0 else float(best - second)


def top_two_margin(values) -> float:
    """Relative margin between the largest value and the largest of all the others."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size < 2:
        return math.inf
    best = int(np.argmax(flat))
    return relative_margin(flat[best], np.max(np.delete(flat, best)))


def peak_margin(response) -> float:
    """Relative margin between the two highest local maxima (3 x 3) of a 2-d response: the
    candidates a peak search chooses between (neighbours of one peak are one candidate)."""
    response = np.asarray(response, dtype=np.float32)
    dilated = cv2.dilate(response, np.ones((3, 3), np.uint8))
    peaks = np.sort(response[response >= dilated].astype(np.float64))[::-1]
    return relative_margin(peaks[0], peaks[1] if len(peaks) > 1 else -math.inf)


class Tracker(Protocol):
    """What the harness drives: a tracker whose state it can read and set."""

    def init(self, image_bgr: np.ndarray, box: np.ndarray) -> None: ...
    def track(self, image_bgr: np.ndarray) -> None: ...
    def get_state(self) -> TrackState: ...
    def set_state(self, state: TrackState) -> None: ...
    def last_margin(self) -> float: ...


class PackageTracker:
    """A package tracker behind the harness interface (margins are the reference's to give)."""

    def __init__(self, tracker):
        self.tracker = tracker

    def init(self, image_bgr, box) -> None:
        self.tracker.init(image_bgr, tuple(float(v) for v in box))

    def track(self, image_bgr) -> None:
        self.tracker.track(image_bgr)

    def get_state(self) -> TrackState:
        return TrackState(np.array(self.tracker.center, np.float64),
                          np.array(self.tracker.size, np.float64))

    def set_state(self, state: TrackState) -> None:
        self.tracker.center = state.center.copy()
        self.tracker.size = state.size.copy()

    def last_margin(self) -> float:
        return math.nan


@dataclass(frozen=True)
class FrameRow:
    """One tracked frame: free-run and lockstep deviations (px), the reference's margin."""
    frame: int
    free_px: float
    lockstep_px: float
    margin: float


def run_side_by_side(package: Tracker, reference: Tracker, lockstep_package: Tracker,
                     frames: Iterable[np.ndarray], box) -> list[FrameRow]:
    """Initialise all three on the first frame with the 0-based ``box``; track the rest.

    ``package`` and ``reference`` run free; before each frame ``lockstep_package`` is set to the
    reference's state.
    """
    frames = iter(frames)
    first = next(frames)
    box = np.asarray(box, dtype=np.float64)
    for tracker in (package, reference, lockstep_package):
        tracker.init(first, box)
    rows = []
    for index, image in enumerate(frames, start=1):
        lockstep_package.set_state(reference.get_state())
        for tracker in (package, reference, lockstep_package):
            tracker.track(image)
        theirs = reference.get_state()
        rows.append(FrameRow(index, state_deviation(package.get_state(), theirs),
                             state_deviation(lockstep_package.get_state(), theirs),
                             reference.last_margin()))
    return rows


@dataclass(frozen=True)
class ParitySummary:
    """Acceptance figures of one run (see the module notes)."""
    frames: int
    lockstep_max_px: float
    free_max_px: float
    parted_at: int | None  # first frame whose free-run deviation exceeds PARTING_PX
    margin_at_parting: float | None
    first_over_limit: int | None  # first frame whose free-run deviation exceeds the limit
    min_margin: float
    passed: bool

    def describe(self) -> str:
        parting = ('never' if self.parted_at is None else
                   f'frame {self.parted_at} (reference margin {self.margin_at_parting:.3g})')
        return (f'{self.frames} frames: lockstep max {self.lockstep_max_px:.3g} px, free-run max '
                f'{self.free_max_px:.3g} px, parted {parting}; '
                f"{'PASS' if self.passed else 'FAIL'}")


def summarise(rows: list[FrameRow], lockstep_limit: float = LOCKSTEP_LIMIT_PX,
              free_limit: float = FREE_RUN_LIMIT_PX, tie_margin: float = TIE_MARGIN
              ) -> ParitySummary:
    """Pass when every lockstep frame is within ``lockstep_limit`` and the free run stays within
    ``free_limit``, or parts only at a frame whose reference margin is below ``tie_margin``."""
    if not rows:
        raise ValueError('no tracked frames to summarise')
    free = np.array([row.free_px for row in rows])
    lockstep = np.array([row.lockstep_px for row in rows])
    margins = np.array([row.margin for row in rows])
    parted = next((row for row in rows if row.free_px > PARTING_PX), None)
    over = next((row.frame for row in rows if row.free_px > free_limit), None)
    lockstep_ok = bool(np.all(lockstep < lockstep_limit))
    free_ok = over is None or (parted is not None and parted.margin < tie_margin)
    return ParitySummary(
        frames=len(rows), lockstep_max_px=float(lockstep.max()), free_max_px=float(free.max()),
        parted_at=parted.frame if parted else None,
        margin_at_parting=parted.margin if parted else None, first_over_limit=over,
        min_margin=float(np.nanmin(margins)) if np.any(np.isfinite(margins)) else math.nan,
        passed=lockstep_ok and free_ok)


# ---------------------------------------------------------------- importing the reference code
def import_reference(checkout: Path, package: str) -> types.ModuleType:
    """Import ``package`` from the reference ``checkout`` (put first on ``sys.path``)."""
    checkout = Path(checkout).resolve()
    if not (checkout / package / '__init__.py').is_file():
        raise ValueError(f"'{checkout}' is not a checkout with the '{package}' package "
                         f'({checkout / package / "__init__.py"} is missing)')
    loaded = sys.modules.get(package)
    if loaded is not None:
        origin = Path(getattr(loaded, '__file__', '') or '').resolve()
        if checkout not in origin.parents:
            raise ValueError(f"another '{package}' ({origin}) is already imported in this "
                             f'process; run one reference checkout per process')
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    return importlib.import_module(package)


def import_reference_module(checkout: Path, package: str, module: str) -> types.ModuleType:
    """``import_reference`` then one of its modules; a missing dependency becomes a clear error."""
    import_reference(checkout, package)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise ValueError(f'the reference code in {checkout} needs the Python module '
                         f"'{error.name}', which is not installed here (install it into the "
                         'environment that runs the harness)') from None


def got10k_stand_in() -> None:
    """siamfc-pytorch's tracker derives from got10k's ``Tracker`` (a name and a flag); where the
    got10k toolkit is not installed, register a module with that base class alone."""
    with contextlib.suppress(ModuleNotFoundError):
        importlib.import_module('got10k.trackers')
        return

    class Tracker:
        def __init__(self, name, is_deterministic=False):
            self.name = name
            self.is_deterministic = is_deterministic

    package = types.ModuleType('got10k')
    trackers = types.ModuleType('got10k.trackers')
    trackers.Tracker = Tracker
    package.trackers = trackers
    package.__path__ = []
    sys.modules.setdefault('got10k', package)
    sys.modules.setdefault('got10k.trackers', trackers)


class NumpyRecorder:
    """Stands for ``numpy`` in a reference module: records copies of the arguments of the named
    functions (the arrays the reference chooses from), passes every call through unchanged."""

    def __init__(self, recorded: Iterable[str]):
        self._recorded = set(recorded)
        self.calls: dict[str, list] = {name: [] for name in self._recorded}

    def __getattr__(self, name: str) -> Any:
        function = getattr(np, name)
        if name not in self._recorded:
            return function

        def recording(*args, **kwargs):
            result = function(*args, **kwargs)
            self.calls[name].append((np.array(args[0], copy=True), result))
            return result

        return recording

    def take(self, name: str) -> list:
        calls, self.calls[name] = self.calls[name], []
        return calls


def load_plain_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a pysot / siamfc-pytorch file into a reference network on the CPU, strictly (the
    references' own loaders move tensors to CUDA)."""
    raw = torch.load(path, map_location='cpu', weights_only=True)
    state_dict = raw['state_dict'] if 'state_dict' in raw else raw
    if state_dict and all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict):
        state_dict = {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state_dict.items()}
    model.load_state_dict(state_dict, strict=True)


CALIBRATION_PAIRS = 16
CALIBRATION_BATCH = 4


def calibration_crops(frames: list[np.ndarray], size: int, count: int,
                      rng: np.random.Generator) -> torch.Tensor:
    """``count`` square windows of the ``frames`` (side 10-60 % of the frame's shorter side, at
    seeded random places), each resized to ``size``: a float ``(count, 3, size, size)`` batch of
    0-255 pixels in the frames' own channel order."""
    crops = []
    for _ in range(count):
        frame = frames[int(rng.integers(len(frames)))]
        height, width = frame.shape[:2]
        side = max(2, int(rng.uniform(0.1, 0.6) * min(height, width)))
        top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
        crops.append(cv2.resize(frame[top:top + side, left:left + side], (size, size)))
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2),
                                                 dtype=np.float32))


def calibrate_batchnorm(model: torch.nn.Module, forward: Callable, exemplars: torch.Tensor,
                        searches: torch.Tensor) -> None:
    """Set every BatchNorm layer's running statistics to the mean of its batch statistics over
    exemplar/search pairs of real image crops, the model's own ``forward(z, x)`` run in training
    mode; the weights stay as initialised.

    A fresh network's BatchNorm layers hold mean 0 and variance 1, so at inference they pass
    activations through unscaled: through ResNet-50's fifty He-initialised layers pysot's
    regression outputs reach 1e7 (1e3 even with statistics of noise images), its ``exp`` of
    them overflows, and both trackers then compare only infinities. With statistics of its own
    activations on real crops the network's outputs stay in a trained network's range."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches
    model.train()
    with torch.no_grad():
        for first in range(0, len(exemplars), CALIBRATION_BATCH):
            batch = slice(first, first + CALIBRATION_BATCH)
            forward(exemplars[batch], searches[batch])
    model.eval()
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


# ---------------------------------------------------------------- pysot
class PysotReference:
    """pysot's SiamRPN tracker from a checkout, on the CPU, with the given weights."""

    def __init__(self, checkout: Path, config_file: Path, weights: Path):
        self.modules = pysot_modules(checkout, config_file)
        model = self.modules['builder'].ModelBuilder()
        load_plain_weights(model, weights)
        self.tracker = self.modules['trackers'].build_tracker(model.eval())
        module = sys.modules[type(self.tracker).__module__]
        if not isinstance(module.np, NumpyRecorder):
            module.np = NumpyRecorder(['argmax'])
        self.recorder: NumpyRecorder = module.np

    @staticmethod
    def make_random_weights(checkout: Path, config_file: Path, seed: int, path: Path,
                            frames_bgr: list[np.ndarray]) -> Path:
        """A freshly initialised pysot network (seeded), its BatchNorm statistics set on crops
        of ``frames_bgr`` (:func:`calibrate_batchnorm`), saved as pysot saves snapshots."""
        modules = pysot_modules(checkout, config_file)
        torch.manual_seed(seed)
        model = modules['builder'].ModelBuilder()
        track_cfg = modules['config'].cfg.TRACK

        def exemplar_then_search(z, x):
            model.template(z)
            model.track(x)

        rng = np.random.default_rng(seed)
        calibrate_batchnorm(
            model, exemplar_then_search,
            calibration_crops(frames_bgr, track_cfg.EXEMPLAR_SIZE, CALIBRATION_PAIRS, rng),
            calibration_crops(frames_bgr, track_cfg.INSTANCE_SIZE, CALIBRATION_PAIRS, rng))
        torch.save({'epoch': 0, 'state_dict': model.state_dict()}, path)
        return path

    def init(self, image_bgr, box) -> None:
        self.tracker.init(image_bgr, [float(v) for v in box])

    def track(self, image_bgr) -> None:
        self.recorder.take('argmax')
        self.tracker.track(image_bgr)
        self._pscore = self.recorder.take('argmax')[-1][0]

    def get_state(self) -> TrackState:
        return TrackState(np.array(self.tracker.center_pos, np.float64),
                          np.array(self.tracker.size, np.float64))

    def set_state(self, state: TrackState) -> None:
        self.tracker.center_pos = state.center.copy()
        self.tracker.size = state.size.copy()

    def last_margin(self) -> float:
        return top_two_margin(self._pscore)


def pysot_modules(checkout: Path, config_file: Path) -> dict[str, types.ModuleType]:
    """pysot's config (reset to its defaults, merged with ``config_file``, CUDA off), model
    builder and tracker builder."""
    config = import_reference_module(checkout, 'pysot', 'pysot.core.config')
    defaults = getattr(config, '_harness_defaults', None)
    if defaults is None:
        defaults = config._harness_defaults = config.cfg.clone()
    cfg = config.cfg
    cfg.defrost()
    cfg.clear()
    cfg.update(defaults.clone())
    cfg.merge_from_file(str(config_file))
    cfg.CUDA = False
    return {'config': config,
            'builder': import_reference_module(checkout, 'pysot', 'pysot.models.model_builder'),
            'trackers': import_reference_module(checkout, 'pysot', 'pysot.tracker.tracker_builder')}


# ---------------------------------------------------------------- siamfc-pytorch
class SiamFCReference:
    """siamfc-pytorch's ``TrackerSiamFC`` from a checkout (RGB images, 1-based boxes, its
    ``[y, x]`` state), on the CPU, with the given weights."""

    def __init__(self, checkout: Path, weights: Path):
        module = siamfc_module(checkout)
        self.tracker = module.TrackerSiamFC()  # its loader does not use weights_only: load here
        load_plain_weights(self.tracker.net, weights)
        self.tracker.net = self.tracker.net.to(self.tracker.device)
        if not isinstance(module.np, NumpyRecorder):
            module.np = NumpyRecorder(['amax', 'unravel_index'])
        self.recorder: NumpyRecorder = module.np
        self._margin = math.nan

    @staticmethod
    def make_random_weights(checkout: Path, seed: int, path: Path,
                            frames_bgr: list[np.ndarray]) -> Path:
        """siamfc-pytorch's network as its constructor initialises it (seeded), its BatchNorm
        statistics set on crops of ``frames_bgr`` (:func:`calibrate_batchnorm`; RGB, as it
        tracks), saved as its training saves checkpoints (a plain state dict)."""
        module = siamfc_module(checkout)
        torch.manual_seed(seed)
        tracker = module.TrackerSiamFC()
        net = tracker.net
        frames_rgb = [np.ascontiguousarray(frame[..., ::-1]) for frame in frames_bgr]
        rng = np.random.default_rng(seed)
        calibrate_batchnorm(
            net, net,
            calibration_crops(frames_rgb, tracker.cfg.exemplar_sz, CALIBRATION_PAIRS, rng),
            calibration_crops(frames_rgb, tracker.cfg.instance_sz, CALIBRATION_PAIRS, rng))
        torch.save(net.state_dict(), path)
        return path

    def init(self, image_bgr, box) -> None:
        box = np.asarray(box, dtype=np.float64)
        one_based = np.concatenate([box[:2] + 1.0, box[2:]])  # its init subtracts 1
        self.tracker.init(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), one_based)

    def track(self, image_bgr) -> None:
        self.recorder.take('amax')
        self.recorder.take('unravel_index')
        self.tracker.update(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        responses = self.recorder.take('amax')[-1][0]
        chosen = tuple(int(v) for v in self.recorder.take('unravel_index')[-1][1])
        self._margin = self._choice_margin(responses, chosen)

    def _choice_margin(self, responses: np.ndarray, chosen: tuple[int, int]) -> float:
        """Margins of the scale choice and of the peak choice (the reference's formula for the
        windowed response of the chosen scale, checked against the peak it chose)."""
        maxima = responses.max(axis=(1, 2))
        response = responses[int(np.argmax(maxima))].copy()
        response -= response.min()
        response /= response.sum() + 1e-16
        influence = self.tracker.cfg.window_influence
        response = (1 - influence) * response + influence * self.tracker.hann_window
        if np.unravel_index(response.argmax(), response.shape) != chosen:
            raise RuntimeError('the harness does not reproduce the peak siamfc-pytorch chose: '
                               'its margin cannot be computed for this version of the code')
        return min(top_two_margin(maxima), peak_margin(response))

    def get_state(self) -> TrackState:
        return TrackState(np.array(self.tracker.center[::-1], np.float64),
                          np.array(self.tracker.target_sz[::-1], np.float64))

    def set_state(self, state: TrackState) -> None:
        tracker = self.tracker
        tracker.center = np.array(state.center[::-1], dtype=np.float32)
        tracker.target_sz = np.array(state.size[::-1], dtype=np.float32)
        # Its search side, derived from the size as its init derives it.
        context = tracker.cfg.context * np.sum(tracker.target_sz)
        tracker.z_sz = np.sqrt(np.prod(tracker.target_sz + context))
        tracker.x_sz = tracker.z_sz * tracker.cfg.instance_sz / tracker.cfg.exemplar_sz

    def last_margin(self) -> float:
        return self._margin


def siamfc_module(checkout: Path) -> types.ModuleType:
    got10k_stand_in()
    return import_reference_module(checkout, 'siamfc', 'siamfc.siamfc')


# ---------------------------------------------------------------- weights both ways
@dataclass(frozen=True)
class WeightsPair:
    """The same network for both sides: the package's file and the reference's file."""
    kind: str  # 'package' (exported to the reference layout) or 'reference' (made by it)
    package_file: Path
    reference_file: Path


def package_weights(tracker_name: str, layout: str, work_dir: Path, seed: int) -> WeightsPair:
    """The package's weights (the shipped file, or a seeded fresh network where none ships),
    exported to ``layout`` for the reference."""
    from siam_tracking_ros.core.checkpoints import save_checkpoint
    from siam_tracking_ros.core.export import export_tracker
    from siam_tracking_ros.core.registry import build_untrained, shipped_weights

    shipped = shipped_weights(tracker_name)
    torch.manual_seed(seed)
    tracker = build_untrained(tracker_name, device='cpu')
    if shipped is not None:
        tracker.load_weights(shipped)
        own = shipped
    else:
        own = save_checkpoint(work_dir / f'{tracker_name}_package_seed{seed}.pth', tracker_name,
                              tracker.model, tracker.config, {'seed': seed}, tracker.colour_order)
    exported = export_tracker(tracker, layout, work_dir / f'{tracker_name}_exported_{layout}.pth')
    return WeightsPair('package', Path(own), exported.path)


@dataclass(frozen=True)
class ReferenceSpec:
    """Which reference runs a tracker and how to build it."""
    kind: str  # 'pysot' or 'siamfc'
    checkout: Path
    config_file: Path | None = None  # pysot only

    def build(self, weights: Path) -> Tracker:
        if self.kind == 'pysot':
            return PysotReference(self.checkout, self.config_file, weights)
        return SiamFCReference(self.checkout, weights)

    def random_weights(self, seed: int, path: Path, frames_bgr: list[np.ndarray]) -> Path:
        if self.kind == 'pysot':
            return PysotReference.make_random_weights(self.checkout, self.config_file, seed, path,
                                                      frames_bgr)
        return SiamFCReference.make_random_weights(self.checkout, seed, path, frames_bgr)


def reference_spec(tracker_name: str, checkout: Path, kind: str | None = None,
                   config_file: Path | None = None) -> ReferenceSpec:
    """The reference of ``tracker_name`` (its pysot config found in the checkout by default)."""
    kind = kind or REFERENCE_OF_TRACKER.get(tracker_name)
    if kind not in ('pysot', 'siamfc'):
        raise ValueError(f"no reference known for '{tracker_name}': name it (pysot or siamfc)")
    checkout = Path(checkout)
    if kind == 'pysot' and config_file is None:
        if tracker_name not in PYSOT_CONFIGS:
            raise ValueError(f"no pysot config known for '{tracker_name}': give the experiment's "
                             'config.yaml')
        config_file = checkout / PYSOT_CONFIGS[tracker_name]
    if config_file is not None and not Path(config_file).is_file():
        raise ValueError(f"reference config '{config_file}' does not exist")
    return ReferenceSpec(kind, checkout, Path(config_file) if config_file else None)


def reference_weights(spec: ReferenceSpec, tracker_name: str, work_dir: Path, seed: int,
                      frames_bgr: list[np.ndarray]) -> WeightsPair:
    """Seeded random weights made by the reference's network, BatchNorm statistics set on crops
    of ``frames_bgr``; the package loads the same file."""
    path = spec.random_weights(seed, work_dir / f'{tracker_name}_reference_seed{seed}.pth',
                               frames_bgr)
    return WeightsPair('reference', path, path)


def first_frames(sequences) -> list[np.ndarray]:
    """The first frame (BGR) of each sequence: the images random weights are calibrated on."""
    return [next(iter(sequence.frames())) for sequence in sequences]


def compare_on_sequence(tracker_name: str, spec: ReferenceSpec, weights: WeightsPair,
                        sequence, frames: int, build_package: Callable | None = None,
                        overrides: dict | None = None) -> list[FrameRow]:
    """Run the package's ``tracker_name`` (its config changed by ``overrides``, to match the
    reference's experiment config) and the reference on the first ``frames`` frames of a
    dataset ``sequence`` (initialised on its first ground-truth box) with ``weights``."""
    from siam_tracking_ros.core.registry import build_tracker
    from siam_tracking_ros.eval.ope import initial_box

    sequence = sequence.head(frames)
    build_package = build_package or (lambda path: build_tracker(
        tracker_name, weights=path, device='cpu', precision='fp32', **(overrides or {})))
    package, lockstep = (PackageTracker(build_package(weights.package_file)) for _ in range(2))
    return run_side_by_side(package, spec.build(weights.reference_file), lockstep,
                            sequence.frames(), initial_box(sequence))


def rows_as_dicts(rows: list[FrameRow]) -> list[dict]:
    return [dataclasses.asdict(row) for row in rows]
