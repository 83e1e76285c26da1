"""Deterministic synthetic UAV-like tracking sequences, written in UAV123 layout.

A sequence is rendered from a static top-down *world* (textured ground: procedural fields, noise,
roads, buildings, trees, or mosaics of real image patches from a user-given folder) on which
vehicle-like or person-like sprites move. A drone-like camera follows the target with lag, pans,
zooms, rotates and tilts slightly (one homography world -> image per frame). Similar-looking
distractors move near the target (vehicles in the next lane, persons in a group), trees occlude,
the camera sometimes loses the target (frames marked NaN), and frames get motion blur, illumination
drift and sensor noise.

Ground truth is the tight axis-aligned box of the target's rendered mask, clipped to the image and
written 1-based as UAV123 publishes it. A frame is marked NaN (target absent) when less than
``MIN_IN_VIEW_FRACTION`` of the target's box lies inside the image or less than
``MIN_UNOCCLUDED_FRACTION`` of its pixels are visible; a partly occluded target keeps its full box,
as in the OTB / UAV123 annotations.

Multi-target sequences (``targets`` > 1): the distractors in view at the first frame become
further targets, up to ``targets - 1`` of them (a sequence has fewer when fewer are in view), each
with its own ground truth by the same rule (hidden only by the trees drawn over the main target;
one passing under the main target keeps its full box). They are written in the multi-target
UAV123 layout ``anno/<seq>/<target>.txt`` (``target`` for the main target, ``object<k>`` for the
others; ``eval.datasets``), the frames alone deciding nothing: the same seed renders the same
frames whatever ``targets`` is.

Everything random comes from ``numpy.random.Generator`` seeded per sequence from ``(seed, index)``,
so the same seed writes byte-identical files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from siam_tracking_ros.core import boxes
from siam_tracking_ros.eval.datasets import FRAME_SUFFIXES, is_uav123_layout, read_image

MIN_IN_VIEW_FRACTION = 0.25
MIN_UNOCCLUDED_FRACTION = 0.1
SEQUENCE_NAME = 'synth_{index:03d}'
MAIN_TARGET = 'target'  # the main target's id in a multi-target sequence
# World side in units of the longer frame side: room for the camera to pan, zoom out and rotate.
WORLD_SCALE = 2.8
ZOOM_RANGE = (0.8, 1.6)
NOISE_SHIFT = 32
# Extra simulated frames before and after the sequence: distractors follow the target's path
# shifted in time and need path there.
PATH_MARGIN_FRAMES = 40

# BGR base colours.
FIELD_COLOURS = np.array([
    (60, 140, 70), (90, 170, 190), (60, 90, 130), (80, 190, 200), (150, 150, 150),
    (40, 90, 40), (110, 95, 60), (100, 150, 120), (70, 120, 150), (120, 160, 170)],
    dtype=np.float32)
VEHICLE_COLOURS = np.array([
    (235, 235, 235), (30, 30, 30), (40, 40, 200), (170, 80, 30), (180, 180, 180),
    (40, 200, 230), (90, 90, 90), (60, 120, 40)], dtype=np.float32)
CLOTHING_COLOURS = np.array([
    (40, 40, 180), (150, 60, 20), (30, 30, 30), (220, 220, 220), (50, 150, 220),
    (40, 110, 40), (110, 50, 110), (90, 90, 90)], dtype=np.float32)
ROOF_COLOURS = np.array([(70, 70, 150), (130, 130, 130), (90, 100, 110), (170, 170, 175)],
                        dtype=np.float32)


@dataclass(frozen=True)
class SynthConfig:
    """What the generated sequences look like. Probabilities are per sequence."""

    frames: int = 60
    width: int = 640
    height: int = 360
    distractors: tuple[int, int] = (1, 4)  # inclusive range of similar objects
    occlusion_probability: float = 0.5
    out_of_view_probability: float = 0.3
    motion_blur_probability: float = 0.4
    person_probability: float = 0.4  # else the target is a vehicle
    jpeg_quality: int = 90

    def __post_init__(self):
        if self.frames < 2:
            raise ValueError(f'a sequence needs at least 2 frames, got {self.frames}')
        if self.width < 64 or self.height < 64:
            raise ValueError(f'frame size must be at least 64x64, got {self.width}x{self.height}')
        low, high = self.distractors
        if not 0 <= low <= high:
            raise ValueError(f'distractors must be a range (low, high) with 0 <= low <= high, '
                             f'got {self.distractors}')
        for name in ('occlusion_probability', 'out_of_view_probability',
                     'motion_blur_probability', 'person_probability'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {getattr(self, name)}')
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f'jpeg_quality must be in [1, 100], got {self.jpeg_quality}')


@dataclass(frozen=True, eq=False)
class SynthSequence:
    """Rendered frames (BGR uint8) and their 1-based ground truth (NaN rows: target absent)."""

    name: str
    frames: list[np.ndarray]
    ground_truth: np.ndarray
    other_targets: dict[str, np.ndarray] = field(default_factory=dict)  # 1-based, by target id


@dataclass(eq=False)
class Sprite:
    """An object's appearance: BGR image and alpha in [0, 1], drawn facing +x (vehicles)."""

    image: np.ndarray
    alpha: np.ndarray


@dataclass(eq=False)
class MovingObject:
    sprite: Sprite
    positions: np.ndarray  # (frames, 2) world coordinates of the sprite centre
    headings: np.ndarray  # (frames,) radians; the sprite is rotated by it
    shadow: bool
    upright: bool = False  # persons: turned with the camera so they stay upright in the image


@dataclass(eq=False)
class Occluder:
    """A static tree canopy in world coordinates (``origin`` = top-left of its sprite)."""

    sprite: Sprite
    origin: tuple[int, int]

    @property
    def rect(self) -> tuple[int, int, int, int]:
        height, width = self.sprite.alpha.shape
        return self.origin[0], self.origin[1], width, height


@dataclass(eq=False)
class Scene:
    background: np.ndarray  # uint8 world image with the static trees baked in
    target: MovingObject
    distractors: list[MovingObject]
    occluders: list[Occluder] = field(default_factory=list)


# --------------------------------------------------------------------------- random signals
def smooth_noise(rng: np.random.Generator, length: int, correlation_frames: float) -> np.ndarray:
    """Zero-mean, unit-std noise correlated over about ``correlation_frames`` frames."""
    sigma = max(correlation_frames, 1.0)
    radius = int(3 * sigma)
    white = rng.standard_normal(length + 2 * radius)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    smooth = np.convolve(white, kernel / kernel.sum(), mode='valid')[:length]
    return (smooth - smooth.mean()) / (smooth.std() + 1e-9)


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int,
                octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise in about [-1, 1]: random grids upsampled bicubically and summed."""
    height, width = shape
    total = np.zeros(shape, np.float32)
    amplitude, weight = 1.0, 0.0
    for _ in range(octaves):
        grid = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
        total += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        weight += amplitude
        amplitude *= 0.5
        cell = max(2, cell // 2)
    return total / weight


def _jitter_colour(rng: np.random.Generator, colour: np.ndarray, spread: float) -> np.ndarray:
    return np.clip(colour + rng.uniform(-spread, spread, 3), 0, 255).astype(np.float32)


# --------------------------------------------------------------------------- ground
def _field_patchwork(rng: np.random.Generator, side: int) -> np.ndarray:
    """Agricultural patchwork: Voronoi fields, each with its own colour and row stripes."""
    coarse = max(side // 4, 8)
    seeds = rng.uniform(0, coarse, (int(rng.integers(8, 20)), 2)).astype(np.float32)
    axis = np.arange(coarse, dtype=np.float32)
    distance = ((axis[None, :, None] - seeds[:, 0]) ** 2
                + (axis[:, None, None] - seeds[:, 1]) ** 2)
    labels = np.argmin(distance, axis=-1).astype(np.uint8)
    labels = cv2.resize(labels, (side, side), interpolation=cv2.INTER_NEAREST)
    count = len(seeds)
    colours = np.stack([_jitter_colour(rng, FIELD_COLOURS[rng.integers(len(FIELD_COLOURS))], 20)
                        for _ in range(count)])
    angles = rng.uniform(0, np.pi, count).astype(np.float32)
    periods = rng.uniform(6, 18, count).astype(np.float32)
    strengths = (rng.uniform(0, 0.18, count) * (rng.random(count) < 0.6)).astype(np.float32)
    axis = np.arange(side, dtype=np.float32)
    phase = (axis[None, :] * (2 * np.pi * np.cos(angles) / periods)[labels]
             + axis[:, None] * (2 * np.pi * np.sin(angles) / periods)[labels])
    stripes = 1.0 + strengths[labels] * np.sin(phase)
    return colours[labels] * stripes[..., None]


def _texture_mosaic(rng: np.random.Generator, side: int, textures: list[np.ndarray]) -> np.ndarray:
    """A grid of random crops from real images, each rescaled to its cell."""
    cells = int(rng.integers(2, 5))
    cell = math.ceil(side / cells)
    mosaic = np.zeros((cells * cell, cells * cell, 3), np.float32)
    for row in range(cells):
        for col in range(cells):
            image = textures[int(rng.integers(len(textures)))]
            height, width = image.shape[:2]
            crop = int(min(height, width) * rng.uniform(0.4, 1.0))
            y0 = int(rng.integers(0, height - crop + 1))
            x0 = int(rng.integers(0, width - crop + 1))
            patch = cv2.resize(image[y0:y0 + crop, x0:x0 + crop], (cell, cell),
                               interpolation=cv2.INTER_AREA)
            if rng.random() < 0.5:
                patch = cv2.flip(patch, int(rng.integers(-1, 2)))
            mosaic[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] = patch
    return mosaic[:side, :side]


def _draw_road(rng: np.random.Generator, ground: np.ndarray, points: np.ndarray,
               width: float) -> None:
    """Asphalt along a polyline, with a dashed centre line."""
    polyline = np.round(points).astype(np.int32).reshape(-1, 1, 2)
    asphalt = tuple(float(v) for v in _jitter_colour(rng, np.full(3, 85, np.float32), 15))
    cv2.polylines(ground, [polyline], False, asphalt, int(max(width, 3)), cv2.LINE_AA)
    paint = (210.0, 210.0, 210.0) if rng.random() < 0.7 else (60.0, 200.0, 230.0)
    dash = max(int(width), 4)
    step = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(step)])
    painted = (arc // dash).astype(int) % 2 == 0
    for index in np.flatnonzero(painted[:-1] & painted[1:]):
        cv2.line(ground, tuple(polyline[index, 0]), tuple(polyline[index + 1, 0]), paint,
                 max(1, int(width / 14)), cv2.LINE_AA)


def _random_road(rng: np.random.Generator, side: int) -> np.ndarray:
    """A gently curving road crossing the world."""
    start = rng.uniform(0, side, 2)
    heading = rng.uniform(0, 2 * np.pi)
    bends = np.cumsum(0.02 * smooth_noise(rng, 200, 20))
    steps = np.stack([np.cos(heading + bends), np.sin(heading + bends)], axis=1) * side / 100
    return start + np.concatenate([[np.zeros(2)], np.cumsum(steps, axis=0)]) - steps.sum(0) / 2


def _draw_buildings(rng: np.random.Generator, ground: np.ndarray, keep_clear: np.ndarray,
                    clearance: float) -> None:
    """Rotated rectangular roofs with a cast shadow, away from the target's path."""
    side = ground.shape[0]
    for _ in range(int(rng.integers(3, 10))):
        centre = rng.uniform(0, side, 2)
        if np.min(np.linalg.norm(keep_clear - centre, axis=1)) < clearance:
            continue
        size = rng.uniform(40, 140, 2)
        corners = cv2.boxPoints(((float(centre[0]), float(centre[1])),
                                 (float(size[0]), float(size[1])), float(rng.uniform(0, 90))))
        shadow = np.round(corners + rng.uniform(4, 12)).astype(np.int32)
        cv2.fillPoly(ground, [shadow], (35.0, 35.0, 35.0), cv2.LINE_AA)
        roof = _jitter_colour(rng, ROOF_COLOURS[rng.integers(len(ROOF_COLOURS))], 15)
        cv2.fillPoly(ground, [np.round(corners).astype(np.int32)],
                     tuple(float(v) for v in roof), cv2.LINE_AA)
        cv2.polylines(ground, [np.round(corners).astype(np.int32)], True,
                      tuple(float(v) * 0.7 for v in roof), 2, cv2.LINE_AA)


def build_ground(rng: np.random.Generator, side: int, textures: list[np.ndarray] | None,
                 target_path: np.ndarray, target_size: float, road_along_path: bool) -> np.ndarray:
    """The static world image (float32 BGR) the objects move on."""
    ground = _field_patchwork(rng, side)
    if textures:
        ground = 0.3 * ground + 0.7 * _texture_mosaic(rng, side, textures)
    shading = 1.0 + 0.25 * value_noise(rng, (side, side), cell=max(side // 6, 4))
    grain = 1.0 + 0.08 * value_noise(rng, (side, side), cell=4, octaves=2)
    ground = np.ascontiguousarray(ground * (shading * grain)[..., None], dtype=np.float32)
    for _ in range(int(rng.integers(0, 3))):
        _draw_road(rng, ground, _random_road(rng, side), rng.uniform(2.0, 3.5) * target_size / 2)
    if road_along_path:
        _draw_road(rng, ground, target_path, rng.uniform(2.5, 3.5) * target_size / 2)
    _draw_buildings(rng, ground, target_path, clearance=3 * target_size)
    return ground


# --------------------------------------------------------------------------- objects
def _textured(rng: np.random.Generator, image: np.ndarray, strength: float) -> np.ndarray:
    noise = value_noise(rng, image.shape[:2], cell=3, octaves=2)
    return image * (1.0 + strength * noise[..., None])


def vehicle_sprite(rng: np.random.Generator, length: float, colour: np.ndarray) -> Sprite:
    """A car seen from above, facing +x: body, roof, windows, lights."""
    width = max(int(round(length * rng.uniform(0.42, 0.5))), 6)
    length = max(int(round(length)), 12)
    image = np.zeros((width, length, 3), np.float32)
    alpha = np.zeros((width, length), np.float32)
    radius = max(width // 4, 1)
    for canvas, value in ((image, tuple(float(v) for v in colour)), (alpha, 1.0)):
        cv2.rectangle(canvas, (radius, 0), (length - 1 - radius, width - 1), value, -1)
        cv2.rectangle(canvas, (0, radius), (length - 1, width - 1 - radius), value, -1)
        for cx in (radius, length - 1 - radius):
            for cy in (radius, width - 1 - radius):
                cv2.circle(canvas, (cx, cy), radius, value, -1, cv2.LINE_AA)
    inset = max(width // 6, 1)
    roof = tuple(float(v) for v in np.clip(colour * 1.12 + 10, 0, 255))
    glass = tuple(float(v) for v in rng.uniform(20, 60, 3))
    cv2.rectangle(image, (int(length * 0.3), inset), (int(length * 0.62), width - 1 - inset), roof,
                  -1)
    cv2.rectangle(image, (int(length * 0.62), inset), (int(length * 0.75), width - 1 - inset),
                  glass, -1)
    cv2.rectangle(image, (int(length * 0.18), inset), (int(length * 0.28), width - 1 - inset),
                  glass, -1)
    light = max(width // 8, 1)
    for cy in (inset, width - 1 - inset):
        cv2.circle(image, (length - 1 - light, cy), light, (200.0, 240.0, 250.0), -1)
    return Sprite(_textured(rng, image, 0.08), alpha)


def person_sprite(rng: np.random.Generator, height: float, top: np.ndarray,
                  bottom: np.ndarray) -> Sprite:
    """An upright person as a drone camera at an oblique angle sees it: head, torso, legs."""
    height = max(int(round(height)), 12)
    width = max(int(round(height * rng.uniform(0.32, 0.42))), 5)
    image = np.zeros((height, width, 3), np.float32)
    alpha = np.zeros((height, width), np.float32)
    head = max(int(height * 0.09), 1)
    skin = tuple(float(v) for v in _jitter_colour(rng, np.array([90, 130, 180], np.float32), 30))
    torso_top, torso_bottom = 2 * head, int(height * 0.58)

    def draw(canvas: np.ndarray, head_value, top_value, bottom_value) -> None:
        cv2.circle(canvas, (width // 2, head), head, head_value, -1, cv2.LINE_AA)
        cv2.ellipse(canvas, (width // 2, (torso_top + torso_bottom) // 2),
                    (width // 2 - 1, max((torso_bottom - torso_top) // 2, 1)), 0, 0, 360,
                    top_value, -1, cv2.LINE_AA)
        cv2.rectangle(canvas, (width // 5, torso_bottom - 1),
                      (width - 1 - width // 5, height - 1), bottom_value, -1)

    draw(image, skin, tuple(float(v) for v in top), tuple(float(v) for v in bottom))
    draw(alpha, 1.0, 1.0, 1.0)
    gap = max(width // 10, 1)
    cv2.line(image, (width // 2, int(height * 0.7)), (width // 2, height - 1), (20.0, 20.0, 20.0),
             gap)
    alpha[int(height * 0.7):, width // 2 - gap // 2:width // 2 + (gap + 1) // 2] = 0.0
    return Sprite(_textured(rng, image, 0.1), alpha)


def tree_sprite(rng: np.random.Generator, radius: float) -> Sprite:
    """A canopy: a cluster of overlapping discs, dark green with leafy noise."""
    side = int(2.6 * radius) + 4
    alpha = np.zeros((side, side), np.float32)
    centre = side / 2
    for _ in range(int(rng.integers(3, 8))):
        offset = rng.normal(0, radius * 0.25, 2)
        disc = radius * rng.uniform(0.5, 0.9)
        cv2.circle(alpha, (int(centre + offset[0]), int(centre + offset[1])), int(disc), 1.0, -1,
                   cv2.LINE_AA)
    colour = _jitter_colour(rng, np.array([40, 95, 45], np.float32), 15)
    leaves = 1.0 + 0.35 * value_noise(rng, (side, side), cell=max(int(radius / 3), 2), octaves=3)
    image = colour * leaves[..., None]
    return Sprite(image.astype(np.float32), np.clip(alpha, 0, 1))


# --------------------------------------------------------------------------- motion
def simulate_path(rng: np.random.Generator, frames: int, start: np.ndarray, speed: float,
                  bounds: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Positions and headings of an object wandering with smooth turns inside ``bounds``."""
    low, high = bounds
    centre = (low + high) / 2
    turn_rate = 0.06 * smooth_noise(rng, frames, 8)
    speed_profile = speed * np.clip(1.0 + 0.3 * smooth_noise(rng, frames, 10), 0.3, 2.0)
    heading = rng.uniform(0, 2 * np.pi)
    position = np.asarray(start, np.float64).copy()
    positions, headings = np.empty((frames, 2)), np.empty(frames)
    for t in range(frames):
        if np.any(position < low) or np.any(position > high):
            # Steer back towards the middle of the allowed region.
            wanted = math.atan2(centre - position[1], centre - position[0])
            heading += 0.25 * math.atan2(math.sin(wanted - heading), math.cos(wanted - heading))
        heading += turn_rate[t]
        position = position + speed_profile[t] * np.array([math.cos(heading), math.sin(heading)])
        positions[t], headings[t] = position, heading
    return positions, headings


def _traffic_motion(rng: np.random.Generator, path: np.ndarray, headings: np.ndarray,
                    size: float, speed: float, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A vehicle driving the target's path some frames ahead or behind, in its or the next lane.

    ``path`` / ``headings`` span ``PATH_MARGIN_FRAMES`` extra frames on each side of the clip.
    """
    lag = int(rng.integers(-PATH_MARGIN_FRAMES, PATH_MARGIN_FRAMES))
    lane = float(rng.choice([-1.0, 0.0, 1.0])) * size * 0.6
    if lane == 0.0 and abs(lag) * speed < size * 1.5:
        lane = size * 0.6  # the same lane only at a safe distance
    index = np.arange(frames) + PATH_MARGIN_FRAMES + lag
    normal = np.stack([-np.sin(headings[index]), np.cos(headings[index])], axis=1)
    return path[index] + lane * normal, headings[index]


def _group_motion(rng: np.random.Generator, target_path: np.ndarray, size: float) -> np.ndarray:
    """A person walking beside the target, with a small drift of their own."""
    frames = len(target_path)
    offset = rng.normal(0, size * 0.9, 2)
    drift = np.stack([smooth_noise(rng, frames, 12), smooth_noise(rng, frames, 12)], axis=1)
    return target_path + offset + drift * size * 0.3


# --------------------------------------------------------------------------- scene
@dataclass(frozen=True)
class SceneGeometry:
    side: int  # world side
    bounds: tuple[float, float]  # where camera centres (and the target) may go


def scene_geometry(config: SynthConfig) -> SceneGeometry:
    side = int(WORLD_SCALE * max(config.width, config.height))
    half_view = math.hypot(config.width, config.height) / (2 * ZOOM_RANGE[0])
    return SceneGeometry(side, (half_view, side - half_view))


def _make_objects(rng: np.random.Generator, config: SynthConfig,
                  geometry: SceneGeometry
                  ) -> tuple[MovingObject, list[MovingObject], float, bool, np.ndarray]:
    """Target, distractors, the target's size, whether it is a vehicle, and its whole path."""
    total = config.frames + 2 * PATH_MARGIN_FRAMES
    low, high = geometry.bounds
    start = rng.uniform(low + 0.3 * (high - low), high - 0.3 * (high - low), 2)
    is_vehicle = rng.random() >= config.person_probability
    palette = VEHICLE_COLOURS if is_vehicle else CLOTHING_COLOURS
    size = rng.uniform(28, 64) if is_vehicle else rng.uniform(24, 56)
    speed = rng.uniform(2.0, 7.0) if is_vehicle else rng.uniform(0.5, 2.5)
    colour = palette[rng.integers(len(palette))]
    trousers = CLOTHING_COLOURS[rng.integers(len(CLOTHING_COLOURS))]

    def make_sprite(look: np.ndarray) -> Sprite:
        length = size * rng.uniform(0.9, 1.1)
        if is_vehicle:
            return vehicle_sprite(rng, length, look)
        return person_sprite(rng, length, look, _jitter_colour(rng, trousers, 25))

    path, headings = simulate_path(rng, total, start, speed, (low, high))
    window = slice(PATH_MARGIN_FRAMES, PATH_MARGIN_FRAMES + config.frames)
    target = MovingObject(make_sprite(colour), path[window], headings[window], is_vehicle,
                          upright=not is_vehicle)
    distractors = []
    for _ in range(int(rng.integers(config.distractors[0], config.distractors[1] + 1))):
        # Mostly similar-looking: the hard case for a tracker.
        similar = rng.random() < 0.75
        look = _jitter_colour(rng, colour, 25) if similar else palette[rng.integers(len(palette))]
        if is_vehicle:
            positions, heads = _traffic_motion(rng, path, headings, size, speed, config.frames)
        else:
            positions, heads = _group_motion(rng, path[window], size), headings[window]
        distractors.append(MovingObject(make_sprite(look), positions, heads, is_vehicle,
                                        upright=not is_vehicle))
    return target, distractors, size, is_vehicle, path


def _place_trees(rng: np.random.Generator, config: SynthConfig, geometry: SceneGeometry,
                 target: MovingObject, size: float) -> list[Occluder]:
    """Decorative trees away from the start, plus (sometimes) one on the target's path."""
    placements = []
    start = target.positions[0]
    for _ in range(int(rng.integers(4, 14))):
        centre = rng.uniform(0, geometry.side, 2)
        radius = rng.uniform(0.6, 1.6) * size
        if np.linalg.norm(centre - start) > radius + 1.5 * size:
            placements.append((centre, radius))
    if config.frames >= 10 and rng.random() < config.occlusion_probability:
        when = int(rng.integers(int(0.3 * config.frames), int(0.8 * config.frames)))
        centre = target.positions[when] + rng.normal(0, 0.2 * size, 2)
        radius = rng.uniform(0.6, 1.2) * size
        if np.linalg.norm(centre - start) > radius + 1.5 * size:
            placements.append((centre, radius))
    occluders = []
    for centre, radius in placements:
        sprite = tree_sprite(rng, radius)
        half = sprite.alpha.shape[0] // 2
        occluders.append(Occluder(sprite, (int(centre[0]) - half, int(centre[1]) - half)))
    return occluders


def build_scene(rng: np.random.Generator, config: SynthConfig,
                textures: list[np.ndarray] | None) -> Scene:
    geometry = scene_geometry(config)
    target, distractors, size, is_vehicle, path = _make_objects(rng, config, geometry)
    road_along_path = is_vehicle or rng.random() < 0.4
    ground = build_ground(rng, geometry.side, textures, path, size, road_along_path)
    occluders = _place_trees(rng, config, geometry, target, size)
    for occluder in occluders:
        _paste(ground, occluder.sprite, occluder.origin, shadow_offset=size * 0.15)
    background = np.clip(ground + 0.5, 0, 255).astype(np.uint8)
    return Scene(background, target, distractors, occluders)


# --------------------------------------------------------------------------- rendering
def _paste(canvas: np.ndarray, sprite: Sprite, origin: tuple[int, int],
           shadow_offset: float = 0.0) -> None:
    """Alpha-blend ``sprite`` into ``canvas`` (float32) at integer ``origin``, with a shadow."""
    if shadow_offset > 0:
        shift = int(round(shadow_offset))
        _blend(canvas, np.zeros_like(sprite.image), sprite.alpha * 0.45,
               (origin[0] + shift, origin[1] + shift))
    _blend(canvas, sprite.image, sprite.alpha, origin)


def _blend(canvas: np.ndarray, image: np.ndarray, alpha: np.ndarray,
           origin: tuple[int, int]) -> None:
    height, width = alpha.shape
    x0, y0 = origin
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + width, canvas.shape[1]), min(y0 + height, canvas.shape[0])
    if cx0 >= cx1 or cy0 >= cy1:
        return
    a = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0, None]
    region = canvas[cy0:cy1, cx0:cx1]
    region *= 1.0 - a
    region += a * image[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]


def _posed_sprite(sprite: Sprite, position: np.ndarray,
                  heading: float) -> tuple[Sprite, tuple[int, int]]:
    """The sprite rotated by ``heading`` and shifted by the sub-pixel part of ``position``."""
    height, width = sprite.alpha.shape
    side = int(math.ceil(math.hypot(width, height))) + 3
    origin = (int(math.floor(position[0])) - side // 2, int(math.floor(position[1])) - side // 2)
    # Sprite centre lands on the exact position inside the patch.
    target_centre = (position[0] - origin[0], position[1] - origin[1])
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), -math.degrees(heading),
                                     1.0)
    matrix[:, 2] += np.array(target_centre) - np.array([(width - 1) / 2, (height - 1) / 2])
    image = cv2.warpAffine(sprite.image, matrix, (side, side), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(sprite.alpha, matrix, (side, side), flags=cv2.INTER_LINEAR)
    return Sprite(image, alpha), origin


def _occluded_fraction(posed: Sprite, origin: tuple[int, int], occluders: list[Occluder]) -> float:
    """Share of the posed target's alpha covered by tree canopies (overlaps combined by max)."""
    height, width = posed.alpha.shape
    cover = np.zeros_like(posed.alpha)
    for occluder in occluders:
        ox, oy, ow, oh = occluder.rect
        x0, y0 = max(ox, origin[0]), max(oy, origin[1])
        x1, y1 = min(ox + ow, origin[0] + width), min(oy + oh, origin[1] + height)
        if x0 >= x1 or y0 >= y1:
            continue
        canopy = occluder.sprite.alpha[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        patch = cover[y0 - origin[1]:y1 - origin[1], x0 - origin[0]:x1 - origin[0]]
        np.maximum(patch, canopy, out=patch)
    total = float(posed.alpha.sum())
    return float((posed.alpha * cover).sum()) / total if total > 0 else 1.0


@dataclass(frozen=True)
class CameraPath:
    """Per-frame world -> image homographies and the camera roll inside them."""

    homographies: np.ndarray  # (frames, 3, 3)
    rotations: np.ndarray  # (frames,) radians


def camera_path(rng: np.random.Generator, config: SynthConfig, geometry: SceneGeometry,
                target: MovingObject) -> CameraPath:
    """A drone camera following the target with lag, panning, zooming, rotating, tilting."""
    frames = config.frames
    zoom = np.exp(np.log(rng.uniform(0.95, 1.3)) + rng.uniform(0.05, 0.3)
                  * smooth_noise(rng, frames, rng.uniform(8, 25)))
    zoom = np.clip(zoom, *ZOOM_RANGE)
    rotation_rate = rng.choice([0.0, 0.004, 0.015]) * smooth_noise(rng, frames, 15)
    rotation = rng.uniform(-np.pi, np.pi) + np.cumsum(rotation_rate)
    tilt = rng.uniform(-0.3, 0.3, 2) / max(config.width, config.height)
    half_frame = np.array([config.width, config.height]) / 2
    pan = np.stack([smooth_noise(rng, frames, 15), smooth_noise(rng, frames, 15)], axis=1)
    desired = target.positions + pan * 0.15 * half_frame.min() / zoom[:, None]
    desired += _out_of_view_offsets(rng, config, zoom)
    follow = rng.uniform(0.15, 0.6)
    low, high = geometry.bounds
    centre = np.clip(desired[0], low, high)
    homographies = np.empty((frames, 3, 3))
    for t in range(frames):
        if t > 0:
            centre = np.clip(centre + follow * (desired[t] - centre), low, high)
        homographies[t] = _homography(centre, zoom[t], rotation[t], tilt, half_frame)
    return CameraPath(homographies, rotation)


def _out_of_view_offsets(rng: np.random.Generator, config: SynthConfig,
                         zoom: np.ndarray) -> np.ndarray:
    """Camera offsets that sometimes swing the view off the target for a few frames."""
    frames = config.frames
    offsets = np.zeros((frames, 2))
    if frames < 20 or rng.random() >= config.out_of_view_probability:
        return offsets
    start = int(rng.integers(8, frames - 10))
    length = int(rng.integers(4, 12))
    ramp = np.zeros(frames)
    ramp[start:start + length] = 1.0
    ramp = np.convolve(ramp, np.ones(5) / 5, mode='same')
    angle = rng.uniform(0, 2 * np.pi)
    reach = 1.2 * max(config.width, config.height) / zoom
    return offsets + ramp[:, None] * reach[:, None] * np.array([math.cos(angle), math.sin(angle)])


def _homography(centre: np.ndarray, zoom: float, rotation: float, tilt: np.ndarray,
                half_frame: np.ndarray) -> np.ndarray:
    """World -> image: centre the camera, rotate, zoom, tilt (perspective), move to image centre."""
    cos, sin = math.cos(rotation) * zoom, math.sin(rotation) * zoom
    similarity = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
        [[1.0, 0.0, -centre[0]], [0.0, 1.0, -centre[1]], [0.0, 0.0, 1.0]])
    perspective = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [tilt[0], tilt[1], 1.0]])
    to_image = np.array([[1.0, 0.0, half_frame[0]], [0.0, 1.0, half_frame[1]], [0.0, 0.0, 1.0]])
    return to_image @ perspective @ similarity


def _mask_box_in_image(posed: Sprite, origin: tuple[int, int], homography: np.ndarray,
                       size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Tight 0-based box of the projected mask, clipped to the image, and its in-view fraction."""
    ys, xs = np.nonzero(posed.alpha > 0.5)
    if len(xs) == 0:
        return np.full(4, np.nan), 0.0
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float64)
    pixels = np.stack([xs + origin[0], ys + origin[1]], axis=1).astype(np.float64)
    points = (pixels[:, None, :] + corners[None]).reshape(-1, 1, 2)
    projected = cv2.perspectiveTransform(points, homography).reshape(-1, 2)
    x1, y1 = projected.min(axis=0)
    x2, y2 = projected.max(axis=0)
    full_area = (x2 - x1) * (y2 - y1)
    width, height = size
    cx1, cy1 = np.clip([x1, y1], 0, [width, height])
    cx2, cy2 = np.clip([x2, y2], 0, [width, height])
    clipped_area = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
    box = boxes.corners_to_xywh(np.array([cx1, cy1, cx2, cy2]))
    return box, clipped_area / full_area if full_area > 0 else 0.0


def _motion_blur(frame: np.ndarray, displacement: np.ndarray, exposure: float) -> np.ndarray:
    """Blur along the image motion of the scene (a line kernel as long as the exposed motion)."""
    length = float(np.linalg.norm(displacement)) * exposure
    if length < 1.5:
        return frame
    size = int(min(length, 15)) | 1
    kernel = np.zeros((size, size), np.float32)
    direction = displacement / np.linalg.norm(displacement)
    half = (size - 1) / 2
    start = (int(round(half - direction[0] * half)), int(round(half - direction[1] * half)))
    end = (int(round(half + direction[0] * half)), int(round(half + direction[1] * half)))
    cv2.line(kernel, start, end, 1.0, 1, cv2.LINE_AA)
    return cv2.filter2D(frame, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def _scene_motion(previous: np.ndarray, current: np.ndarray, half_frame: np.ndarray) -> np.ndarray:
    """Image displacement of the scene point at the image centre between two frames."""
    world = cv2.perspectiveTransform(half_frame.reshape(1, 1, 2), np.linalg.inv(previous))
    return cv2.perspectiveTransform(world, current).reshape(2) - half_frame


def _view_window(homography: np.ndarray, size: tuple[int, int],
                 world_side: int) -> tuple[int, int, int, int]:
    """World rectangle ``(x0, y0, x1, y1)`` the camera sees (plus a margin), inside the world."""
    width, height = size
    corners = np.array([[[0, 0]], [[width, 0]], [[0, height]], [[width, height]]], np.float64)
    seen = cv2.perspectiveTransform(corners, np.linalg.inv(homography)).reshape(-1, 2)
    x0, y0 = np.clip(np.floor(seen.min(axis=0)) - 2, 0, world_side).astype(int)
    x1, y1 = np.clip(np.ceil(seen.max(axis=0)) + 2, 0, world_side).astype(int)
    return int(x0), int(y0), int(x1), int(y1)


def _draw_view(scene: Scene, camera: CameraPath, t: int,
               size: tuple[int, int]) -> tuple[np.ndarray, list[tuple[Sprite, tuple[int, int]]],
                                               list]:
    """Frame ``t`` before photometric effects (float32), the posed objects (the distractors,
    then the target last) and the trees drawn over the target."""
    homography = camera.homographies[t]
    x0, y0, x1, y1 = _view_window(homography, size, scene.background.shape[0])
    canvas = scene.background[y0:y1, x0:x1].astype(np.float32)

    def local(origin: tuple[int, int]) -> tuple[int, int]:  # world -> canvas coordinates
        return origin[0] - x0, origin[1] - y0

    posed_objects = []
    for obj in scene.distractors + [scene.target]:
        heading = -camera.rotations[t] if obj.upright else obj.headings[t]
        posed, origin = _posed_sprite(obj.sprite, obj.positions[t], heading)
        shadow = 0.15 * max(obj.sprite.alpha.shape) if obj.shadow else 0.0
        _paste(canvas, posed, local(origin), shadow_offset=shadow)
        posed_objects.append((posed, origin))
    posed_target = posed_objects[-1]
    # Trees touching the target are drawn again over it (they hide it).
    touching = [o for o in scene.occluders if _rects_overlap(o.rect, posed_target)]
    for occluder in touching:
        _blend(canvas, occluder.sprite.image, occluder.sprite.alpha, local(occluder.origin))
    to_canvas = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    frame = cv2.warpPerspective(canvas, homography @ to_canvas, size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)
    return frame, posed_objects, touching


def render_sequence(rng: np.random.Generator, config: SynthConfig, scene: Scene,
                    camera: CameraPath) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (BGR uint8) and 0-based ground truth ``(objects, frames, 4)`` of the distractors
    then the target (last), NaN rows where an object is absent."""
    size = (config.width, config.height)
    half_frame = np.array(size, np.float64) / 2
    gain = 1.0 + rng.uniform(0.03, 0.15) * smooth_noise(rng, config.frames, 20)
    # Sensor noise: windows of one noise field at a random offset per frame (cheaper than a
    # fresh field per frame and just as uncorrelated from frame to frame at each pixel).
    noise_field = rng.standard_normal((config.height + NOISE_SHIFT, config.width + NOISE_SHIFT, 3),
                                      np.float32) * rng.uniform(1.0, 5.0)
    noise_shifts = rng.integers(0, NOISE_SHIFT + 1, (config.frames, 2))
    blurred = rng.random() < config.motion_blur_probability
    exposure = rng.uniform(0.4, 1.0)
    frames = []
    truth = np.full((len(scene.distractors) + 1, config.frames, 4), np.nan)
    for t in range(config.frames):
        frame, posed_objects, touching = _draw_view(scene, camera, t, size)
        if blurred and t > 0:
            motion = _scene_motion(camera.homographies[t - 1], camera.homographies[t], half_frame)
            frame = _motion_blur(frame, motion, exposure)
        dx, dy = noise_shifts[t]
        frame = frame * gain[t] + noise_field[dy:dy + config.height, dx:dx + config.width]
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
        for index, posed in enumerate(posed_objects):
            box, in_view = _mask_box_in_image(*posed, camera.homographies[t], size)
            hidden = _occluded_fraction(*posed, touching)
            if in_view >= MIN_IN_VIEW_FRACTION and 1.0 - hidden >= MIN_UNOCCLUDED_FRACTION:
                truth[index, t] = box
    return frames, truth


def _rects_overlap(rect: tuple[int, int, int, int], posed: tuple[Sprite, tuple[int, int]]) -> bool:
    x, y, w, h = rect
    sprite, (ox, oy) = posed
    sh, sw = sprite.alpha.shape
    return x < ox + sw and ox < x + w and y < oy + sh and oy < y + h


# --------------------------------------------------------------------------- public API
def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sequence ``index`` of a dataset made with ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def generate_sequence(seed: int, index: int = 0, config: SynthConfig = SynthConfig(),
                      textures: list[np.ndarray] | None = None,
                      targets: int = 1) -> SynthSequence:
    """Render one synthetic sequence; ground truth is 1-based like UAV123 (NaN: absent).
    ``targets`` > 1: up to ``targets - 1`` distractors in view at the first frame are targets
    too (``other_targets``)."""
    if targets < 1:
        raise ValueError(f'targets must be at least 1, got {targets}')
    rng = sequence_rng(seed, index)
    scene = build_scene(rng, config, textures)
    camera = camera_path(rng, config, scene_geometry(config), scene.target)
    frames, truth = render_sequence(rng, config, scene, camera)
    if np.isnan(truth[-1, 0]).any():
        # The camera starts on the target and no tree stands at the start, so this means a bug.
        raise RuntimeError(f'synthetic sequence {index} (seed {seed}) starts without a target')
    in_view = [track for track in truth[:-1] if not np.isnan(track[0]).any()]
    others = {f'object{number}': boxes.zero_based_to_one_based(track)
              for number, track in enumerate(in_view[:targets - 1], start=1)}
    return SynthSequence(SEQUENCE_NAME.format(index=index), frames,
                         boxes.zero_based_to_one_based(truth[-1]), others)


def list_texture_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted) to take ground textures from."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f'texture folder not found: {folder}')
    for candidate in (folder, *folder.parents):
        if is_uav123_layout(candidate):
            raise ValueError(f'refusing textures from {folder}: it lies in an evaluation dataset '
                             f'({candidate} has anno/ and data_seq/); use training images')
    paths = sorted(p for p in folder.rglob('*') if p.suffix.lower() in FRAME_SUFFIXES)
    if not paths:
        raise ValueError(f'no image files ({", ".join(FRAME_SUFFIXES)}) under {folder}')
    return paths


def sample_textures(rng: np.random.Generator, paths: list[Path],
                    count: int = 4) -> list[np.ndarray]:
    """``count`` texture images (float32 BGR) drawn from ``paths`` without repetition."""
    chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    return [read_image(paths[int(i)]).astype(np.float32) for i in sorted(chosen)]


def write_sequence(root: Path, sequence: SynthSequence, jpeg_quality: int = 90) -> None:
    """Write ``data_seq/<name>/%06d.jpg`` and ``anno/<name>.txt`` (``NaN,NaN,NaN,NaN`` rows), or
    with other targets ``anno/<name>/target.txt`` and ``anno/<name>/<other>.txt``."""
    frame_dir = Path(root) / 'data_seq' / sequence.name
    frame_dir.mkdir(parents=True, exist_ok=True)
    for number, frame in enumerate(sequence.frames, start=1):
        path = frame_dir / f'{number:06d}.jpg'
        if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
            raise OSError(f'cannot write {path}')
    anno_dir = Path(root) / 'anno'
    if not sequence.other_targets:
        anno_dir.mkdir(parents=True, exist_ok=True)
        _write_ground_truth(anno_dir / f'{sequence.name}.txt', sequence.ground_truth)
        return
    (anno_dir / sequence.name).mkdir(parents=True, exist_ok=True)
    for target, ground_truth in {MAIN_TARGET: sequence.ground_truth,
                                 **sequence.other_targets}.items():
        _write_ground_truth(anno_dir / sequence.name / f'{target}.txt', ground_truth)


def _write_ground_truth(path: Path, ground_truth: np.ndarray) -> None:
    lines = ['NaN,NaN,NaN,NaN' if np.isnan(row).any() else ','.join(f'{v:.2f}' for v in row)
             for row in ground_truth]
    path.write_text('\n'.join(lines) + '\n')


def write_uav123_dataset(out_dir: Path, num_sequences: int, seed: int = 0,
                         config: SynthConfig = SynthConfig(),
                         texture_dir: Path | None = None, targets: int = 1) -> list[str]:
    """Generate ``num_sequences`` sequences into ``out_dir`` in UAV123 layout (with up to
    ``targets`` targets each, see ``generate_sequence``); returns names."""
    if num_sequences < 1:
        raise ValueError(f'num_sequences must be at least 1, got {num_sequences}')
    texture_paths = list_texture_images(texture_dir) if texture_dir is not None else None
    names = []
    for index in range(num_sequences):
        textures = None
        if texture_paths:
            textures = sample_textures(np.random.default_rng([int(seed), index, 1]),
                                       texture_paths)
        sequence = generate_sequence(seed, index, config, textures, targets)
        write_sequence(out_dir, sequence, config.jpeg_quality)
        names.append(sequence.name)
    return names
