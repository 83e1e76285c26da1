"""Training DSiam's learnable parts on short clips (section 3.5).

What trains: the element-wise fusion maps of eq. (9) (DSiamM) and the two regularisers
lambda_v, lambda_w of eqs. (5) and (7); the SiamFC network stays frozen, so ``--init`` takes a
SiamFC (A-Net) file or a DSiam file. One item is a clip of ``steps + 1`` frames of one sequence,
drawn at random gaps of at most ``max_step`` frames, cropped around the ground truth the way the
tracker crops (``DSiamClip``): the search region of frame t + 1, centred on the target's position
in frame t, is scored; at t = 0 without transforms (as in tracking before the first success),
afterwards with V and W learned from frame t (the template crop, and the search-sized region
whose weighted copy W regresses onto). The loss is eq. (10): the logistic loss of every fused
response against its label map J (+1 within SiamFC's 16-pixel radius of the target, -1
elsewhere), summed over the clip.

Clip crops get no photometric augmentation: V and W are regressions between frames of the clip,
and independent colour changes per frame would teach them to undo the augmentation.

``fit_response_bias`` fits the one number DSiam's success test needs from its SiamFC network: the
bias of the reference network's 'adjust' layer, which siamfc-pytorch's head lacks. The reference
learned it in SiamFC's own training, with SiamFC's balanced logistic loss on SiamFC's training
pairs; here the SiamFC network is frozen and the bias alone is fitted the same way (a convex
problem in one variable): ``python -m siam_tracking_ros.train.dsiam_recipe --data DIR ...``.
"""

from __future__ import annotations

import numpy as np
import torch

from siam_tracking_ros.core import boxes
from siam_tracking_ros.core.crop import crop_and_resize_reference
from siam_tracking_ros.core.trackers.dsiam import DSiamClip, clip_loss, clip_responses
from siam_tracking_ros.train.augment import AugmentConfig, CropConfig, box_in_crop
from siam_tracking_ros.train.losses import balanced_logistic_loss, siamfc_labels
from siam_tracking_ros.train.pairs import ImageCache, PairSampler, PairSamplingConfig
from siam_tracking_ros.train.recipes import (SIAMFC_POSITIVE_RADIUS, SIAMFC_STRIDE, RecipeConfig,
                                             SiamFCRecipe, TrainingRecipe, batch_to_model_input,
                                             load_extended_init, register_recipe, set_trainable)

CLIP_STEPS = 3
MAX_STEP = 5


def clip_frames(valid: np.ndarray, steps: int, max_step: int,
                rng: np.random.Generator) -> np.ndarray:
    """``steps + 1`` increasing frame indices of ``valid``, consecutive gaps in [1, max_step].

    Gaps shrink to fit short tracks; a track needs at least ``steps + 1`` valid frames.
    """
    if len(valid) < steps + 1:
        raise ValueError(f'a clip of {steps} steps needs {steps + 1} frames, the track has '
                         f'{len(valid)}')
    largest = max(1, min(max_step, (len(valid) - 1) // steps))
    gaps = rng.integers(1, largest + 1, size=steps)
    start = int(rng.integers(0, len(valid) - int(gaps.sum())))
    positions = start + np.concatenate([[0], np.cumsum(gaps)])
    return valid[positions]


class DSiamClipRecipe(TrainingRecipe):
    """Fusion maps and lambdas of ``dsiam`` / ``dsiam_m`` on a frozen SiamFC (section 3.5)."""

    needs_init = True

    def __init__(self, tracker_name: str, steps: int = CLIP_STEPS, max_step: int = MAX_STEP):
        super().__init__(
            tracker_name, CropConfig(corner_rule='siamfc'), AugmentConfig(),
            PairSamplingConfig(),
            RecipeConfig(lr=1e-2, final_lr_ratio=0.01, weight_decay=0.0, optimizer='adam',
                         schedule='cosine'))
        if steps < 2 or max_step < 1:
            # Step 0 runs without transforms: the lambdas learn from the steps after it.
            raise ValueError(f'DSiam clips need steps >= 2 and max_step >= 1, got {steps}, '
                             f'{max_step}')
        self.steps = steps
        self.max_step = max_step
        self.response_size = (self.crop.instance_size - self.crop.exemplar_size) // \
            SIAMFC_STRIDE + 1

    def describe(self) -> dict:
        return {**super().describe(), 'clip_steps': self.steps, 'max_step': self.max_step}

    def select_tracks(self, tracks):
        long_enough = [track for track in tracks
                       if len(track.valid_frames()) >= self.steps + 1]
        if not long_enough:
            raise ValueError(f'DSiam trains on clips of {self.steps + 1} frames: give sequence '
                             'data (still images are single frames)')
        return long_enough

    def load_init(self, tracker, path):
        return load_extended_init(tracker, path)

    def make_item(self, pair, cache, rng):
        track = pair.template.track
        frames = clip_frames(track.valid_frames(), self.steps, self.max_step, rng)
        crop = self.crop
        images = [cache.read(track.frame_paths[index]) for index in frames]
        targets = [boxes.xywh_to_center_size(track.boxes[index]) for index in frames]

        def cut(frame: int, center: np.ndarray, side: float, size: int) -> np.ndarray:
            image, mean = images[frame]
            return crop_and_resize_reference(image, center, side, size, mean, crop.corner_rule)

        def exemplar(frame: int) -> np.ndarray:
            target = targets[frame]
            return cut(frame, target[:2], crop.template_side(target[2:]), crop.exemplar_size)

        region_crops, search_crops, labels = [], [], []
        for step in range(self.steps):
            target = targets[step]
            side = crop.template_side(target[2:]) * crop.instance_size / crop.exemplar_size
            if step > 0:  # frame 0 is the first frame: nothing is learned from it
                region_crops.append(cut(step, target[:2], side, crop.instance_size))
            # The next frame searched where the target was, at the same scale (the tracker's rule).
            search_crops.append(cut(step + 1, target[:2], side, crop.instance_size))
            moved = box_in_crop(targets[step + 1], target[:2], side, crop.instance_size,
                                crop.corner_rule)
            offset = moved[:2] - (crop.instance_size - 1) / 2.0
            labels.append(siamfc_labels(self.response_size, SIAMFC_STRIDE, offset[None],
                                        SIAMFC_POSITIVE_RADIUS)[0] * 2.0 - 1.0)
        learned = [exemplar(step) for step in range(1, self.steps)]
        return {
            'first_target': torch.from_numpy(exemplar(0)),
            'targets': torch.from_numpy(np.stack(learned)),
            'regions': torch.from_numpy(np.stack(region_crops)),
            'searches': torch.from_numpy(np.stack(search_crops)),
            'labels': torch.from_numpy(np.stack(labels).astype(np.float32)),
        }

    def prepare(self, tracker):
        set_trainable(tracker.model, False)
        tracker.model.eval()
        parameters = tracker.extension.trainable_parameters()
        for parameter in parameters:
            parameter.requires_grad_(True)
        return parameters

    def clip(self, tracker, batch) -> DSiamClip:
        """The batch's crops as a ``DSiamClip`` in the model's colour order."""
        def images(name: str) -> torch.Tensor:
            crops = batch[name]
            flat = crops.reshape(-1, *crops.shape[-3:])
            tensor = batch_to_model_input(flat, tracker.colour_order, tracker.device)
            return tensor.reshape(*crops.shape[:-3], *tensor.shape[-3:])

        return DSiamClip(first_targets=images('first_target'), searches=images('searches'),
                         targets=images('targets'), regions=images('regions'))

    def loss(self, tracker, batch):
        config = tracker.config
        responses = clip_responses(tracker.model.appearance, tracker.extension,
                                   self.clip(tracker, batch), config.variation_rate,
                                   config.suppression_rate,
                                   config.highlight_sigma_factor * config.exemplar_size)
        loss = clip_loss(responses.float(), batch['labels'].to(tracker.device))
        return loss, {'clip': float(loss.detach())}


register_recipe('dsiam', DSiamClipRecipe)
register_recipe('dsiam_m', DSiamClipRecipe)


# ---------------------------------------------------------------------- the success test's bias
def siamfc_training_responses(network, colour_order: str, tracks, pairs: int, seed: int,
                              device='cpu', batch_size: int = 16):
    """Frozen SiamFC responses ``(pairs, 1, R, R)`` and labels ``(pairs, R, R)`` on SiamFC
    training pairs of ``tracks`` (``SiamFCRecipe``'s sampling, crops and augmentation)."""
    if pairs < 1:
        raise ValueError(f'need at least one pair, got {pairs}')
    recipe = SiamFCRecipe('siamfc_alexnet')
    sampler, cache = PairSampler(tracks, recipe.sampling), ImageCache()
    rng = np.random.default_rng(seed)
    responses, labels = [], []
    with torch.no_grad():
        for start in range(0, pairs, batch_size):
            items = [recipe.make_item(sampler.sample(rng), cache, rng)
                     for _ in range(min(batch_size, pairs - start))]
            template, search = (batch_to_model_input(torch.stack([item[name] for item in items]),
                                                     colour_order, device)
                                for name in ('template', 'search'))
            responses.append(network(network.features(template),
                                     network.features(search)).float().cpu())
            labels.append(torch.stack([item['labels'] for item in items]).float())
    return torch.cat(responses), torch.cat(labels)


def fit_response_bias(responses: torch.Tensor, labels: torch.Tensor, steps: int = 50) -> float:
    """The bias b minimising SiamFC's balanced logistic loss of ``responses + b`` (Newton's
    method; the loss is convex in b)."""
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    responses, labels = responses.double(), labels.double()
    for _ in range(steps):
        loss = balanced_logistic_loss(responses + bias, labels)
        gradient, = torch.autograd.grad(loss, bias, create_graph=True)
        curvature, = torch.autograd.grad(gradient, bias)
        with torch.no_grad():
            step = gradient / curvature.clamp(min=1e-12)
            bias -= step
        if abs(float(step)) < 1e-6:
            break
    return float(bias.detach())


def main(argv=None) -> None:
    import argparse
    import json
    from pathlib import Path

    from siam_tracking_ros.core.registry import build_tracker
    from siam_tracking_ros.train.sources import ensure_not_evaluation_set, load_tracks

    parser = argparse.ArgumentParser(description='Fit DSiam\'s response bias (the reference '
                                     'network\'s adjust-layer bias) for a SiamFC weights file.')
    parser.add_argument('--data', nargs='+', required=True, help='sequence folders to fit on')
    parser.add_argument('--weights', default=None, help='SiamFC file (default: the shipped one)')
    parser.add_argument('--pairs', type=int, default=1024)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    tracks = []
    for spec in args.data:
        ensure_not_evaluation_set(Path(spec))
        tracks += load_tracks(spec, Path(spec))
    tracker = build_tracker('siamfc_alexnet', weights=args.weights, device='cpu',
                            precision='fp32')
    responses, labels = siamfc_training_responses(tracker.model, tracker.colour_order, tracks,
                                                  args.pairs, args.seed)
    bias = fit_response_bias(responses, labels)
    loss = float(balanced_logistic_loss(responses + bias, labels))
    print(json.dumps({'response_bias': round(bias, 4), 'pairs': args.pairs, 'seed': args.seed,
                      'balanced_loss': round(loss, 4),
                      'balanced_loss_without_bias': round(float(balanced_logistic_loss(
                          responses, labels)), 4)}))


if __name__ == '__main__':
    main()
