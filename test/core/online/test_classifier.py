"""The online classifier on synthetic feature maps with a target and a look-alike distractor."""

import math

import pytest
import torch
import torch.nn.functional as F

from siam_tracking_ros.core.online.classifier import (
    AttentionWeights, FrameState, OnlineClassifier, OnlineClassifierConfig, apply_filter,
    compress, dual_attention, filter_gauss_newton_step, gaussian_labels, label_centre_shift,
    response_activation)
from siam_tracking_ros.core.online.optim import concat_residuals, gauss_newton

CHANNELS, SIZE = 8, 15
CENTRE = (SIZE - 1) // 2


class Scene:
    """Feature maps with a 3x3 target pattern and a distractor that correlates more with it."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.target = torch.rand(CHANNELS, generator=self.generator) + 0.5
        other = torch.randn(CHANNELS, generator=self.generator)
        other -= (other @ self.target) / (self.target @ self.target) * self.target
        other *= 0.8 * self.target.norm() / other.norm()
        # Stronger along the target direction, plus a component the target lacks.
        self.distractor = 1.3 * self.target + other

    def sample(self, target_xy, distractor_xy) -> torch.Tensor:
        features = 0.05 * torch.randn(CHANNELS, SIZE, SIZE, generator=self.generator).abs()
        for vector, (x, y) in ((self.target, target_xy), (self.distractor, distractor_xy)):
            features[:, y - 1:y + 2, x - 1:x + 2] += vector[:, None, None]
        return features

    def training_set(self, count: int):
        samples, offsets = [], []
        for _ in range(count):
            dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=self.generator))
            target = (CENTRE + dx, CENTRE + dy)
            distractor = ((target[0] + 6) % (SIZE - 4) + 2, (target[1] + 5) % (SIZE - 4) + 2)
            samples.append(self.sample(target, distractor))
            offsets.append((float(dx), float(dy)))
        return torch.stack(samples), torch.tensor(offsets)


def _peak_near(scores: torch.Tensor, feature_xy) -> float:
    # With the even 4x4 kernel, feature cell i sits between score cells i and i + 1.
    x, y = feature_xy
    return float(scores[y:y + 2, x:x + 2].max())


@pytest.fixture(scope="module")
def fitted():
    scene = Scene()
    features, offsets = scene.training_set(20)
    classifier = OnlineClassifier(CHANNELS, OnlineClassifierConfig())
    losses = classifier.initialise(features, offsets, (3.0, 3.0), dropout_copies=0)
    return scene, classifier, losses


def test_first_frame_fit_lowers_the_loss(fitted):
    _, _, losses = fitted
    assert len(losses) == OnlineClassifierConfig().init_gn_iter + 1
    assert losses[-1] < 0.5 * losses[0]


def test_classifier_ranks_target_above_distractor_where_cross_correlation_does_not(fitted):
    scene, classifier, _ = fitted
    target_xy, distractor_xy = (5, 9), (11, 4)
    test = scene.sample(target_xy, distractor_xy)[None]
    _, scores = classifier.classify(test)
    assert scores.shape == (1, SIZE, SIZE)
    assert _peak_near(scores[0], target_xy) > 2.0 * _peak_near(scores[0], distractor_xy)
    x, y = target_xy
    template = test[:, :, y - 1:y + 2, x - 1:x + 2]
    correlation = F.conv2d(test, template, padding=1)[0, 0]
    assert correlation[distractor_xy[1], distractor_xy[0]] > correlation[y, x]


def test_labels_sit_half_a_cell_past_the_offset_where_the_even_filter_peaks():
    # A centred 1-channel impulse through a centred 4x4 box filter: the 'same' output peaks over
    # cells 7 and 8 of 15 (the filter's centre is half a cell before each output cell), so the
    # label of a centred target peaks at 7 + 0.5, where the authors' half-cell shift puts it.
    features = torch.zeros(1, 1, 15, 15)
    features[0, 0, 7, 7] = 1.0
    scores = apply_filter(features, torch.ones(1, 1, 4, 4))[0]
    assert torch.nonzero(scores == scores.max()).tolist() == [[6, 6], [6, 7], [6, 8], [6, 9],
                                                               [7, 6], [7, 7], [7, 8], [7, 9],
                                                               [8, 6], [8, 7], [8, 8], [8, 9],
                                                               [9, 6], [9, 7], [9, 8], [9, 9]]
    assert label_centre_shift(4) == 0.5 and label_centre_shift(3) == 0.0
    classifier = OnlineClassifier(1, OnlineClassifierConfig(compressed_channels=1,
                                                            init_gn_iter=1, init_cg_iter=1,
                                                            pipeline="cmp"))
    classifier.initialise(features, torch.zeros(1, 2), (4.0, 4.0), dropout_copies=0)
    labels = classifier.memory.labels[0]
    assert labels.shape == (15, 15)
    torch.testing.assert_close(labels[7, 7], labels[8, 8])
    torch.testing.assert_close(labels[7, 7], torch.tensor(math.exp(-0.25)))


def test_score_maps_put_the_labelled_centre_on_the_centre_pixel():
    # A map peaking at cell H / 2 (the centred target's label) becomes a crop-pixel map peaking
    # at its centre pixel, and a peak one cell to the right lands out_size / H pixels right.
    classifier = OnlineClassifier(CHANNELS)
    size, out_size = 26, 287
    grid = torch.arange(size, dtype=torch.float32)
    bump = torch.exp(-((grid[None, :] - 13.0) ** 2 + (grid[:, None] - 13.0) ** 2) / 8.0)
    shifted = torch.exp(-((grid[None, :] - 14.0) ** 2 + (grid[:, None] - 13.0) ** 2) / 8.0)
    maps = classifier.score_maps(torch.stack([bump, shifted]), out_size)
    assert maps.shape == (2, out_size, out_size)
    assert divmod(int(maps[0].argmax()), out_size) == (143, 143)
    row, col = divmod(int(maps[1].argmax()), out_size)
    assert row == 143 and col == 143 + round(out_size / size)
    torch.testing.assert_close(maps[0].max(), bump.max(), atol=1e-3, rtol=0)


def test_labels_are_gaussians_peaking_at_the_offset():
    labels = gaussian_labels(9, torch.tensor([[0.0, 0.0], [2.0, -1.0]]), sigma=1.0)
    assert labels.shape == (2, 9, 9)
    assert float(labels[0, 4, 4]) == pytest.approx(1.0)
    assert float(labels[1, 3, 6]) == pytest.approx(1.0)
    assert float(labels[1, 3, 7]) == pytest.approx(torch.exp(torch.tensor(-0.5)).item())


def _classifier_with_memory(config: OnlineClassifierConfig) -> OnlineClassifier:
    scene = Scene(seed=1)
    features, offsets = scene.training_set(4)
    classifier = OnlineClassifier(CHANNELS, config)
    classifier.initialise(features, offsets, (3.0, 3.0), dropout_copies=2)
    return classifier


# On the 16 x 16 map (offsets from pixel 16 // 2 = 8, as the authors measure them) the peak sits
# at (8, 8), the centre; (1, 1) lies beyond 0.8 x half the side (6.4 pixels) from it, (8, 12)
# within.
FAR, NEAR = (1, 1), (8, 12)


def _map_with_peaks(peak: float, second: float, second_at=FAR) -> torch.Tensor:
    scores = torch.zeros(SIZE + 1, SIZE + 1)
    scores[8, 8] = peak
    scores[second_at] = second
    return scores


@pytest.mark.parametrize("peak, second, second_at, state", [
    (0.2, 0.0, FAR, FrameState.NOT_FOUND),
    (0.9, 0.75, NEAR, FrameState.DISTRACTOR),       # strong second peak, both near: uncertain
    (0.9, 0.75, FAR, FrameState.HARD_NEGATIVE),     # strong second peak far out: learn from it
    (0.9, 0.6, FAR, FrameState.HARD_NEGATIVE),
    (0.9, 0.6, NEAR, FrameState.HARD_NEGATIVE),
    (0.9, 0.4, FAR, FrameState.NORMAL),
])
def test_analysis_thresholds(peak, second, second_at, state):
    classifier = OnlineClassifier(CHANNELS)
    analysis = classifier.analyse(_map_with_peaks(peak, second, second_at), (2.0, 2.0))
    assert analysis.state is state
    assert analysis.peak_score == pytest.approx(peak)
    assert analysis.peak_offset == (0.0, 0.0)


def test_second_peak_inside_the_target_neighbourhood_is_not_a_distractor():
    scores = torch.zeros(SIZE + 1, SIZE + 1)
    scores[8, 8], scores[8, 9] = 0.9, 0.85
    analysis = OnlineClassifier(CHANNELS).analyse(scores, (2.0, 2.0))
    assert analysis.state is FrameState.NORMAL


def test_update_schedule_memory_and_learning_rates():
    config = OnlineClassifierConfig(update_interval=3, init_gn_iter=1, init_cg_iter=5)
    classifier = _classifier_with_memory(config)
    assert len(classifier.memory) == 6 and classifier.memory.num_initial == 6
    sample = classifier.memory.features[:1]
    normal = classifier.analyse(_map_with_peaks(0.9, 0.1), (3.0, 3.0))
    absent = classifier.analyse(_map_with_peaks(0.1, 0.0), (3.0, 3.0))
    distractor = classifier.analyse(_map_with_peaks(0.9, 0.85, NEAR), (3.0, 3.0))
    hard = classifier.analyse(_map_with_peaks(0.9, 0.6), (3.0, 3.0))

    rate, hard_rate = config.learning_rate, config.hard_negative_learning_rate
    assert classifier.update(sample, normal, (0.0, 0.0)) is False
    assert len(classifier.memory) == 7
    # The authors' first weight: lr after the others were divided by (1 - lr), normalised.
    assert float(classifier.memory.weights[-1]) == pytest.approx(rate / (1 / (1 - rate) + rate))
    before = classifier.filter_weight.clone()
    assert classifier.update(sample, absent, (0.0, 0.0)) is False
    assert len(classifier.memory) == 7
    # Third frame: periodic filter optimisation even though the frame is left out.
    assert classifier.update(sample, distractor, (0.0, 0.0)) is True
    assert len(classifier.memory) == 7
    assert not torch.equal(before, classifier.filter_weight)
    # A hard negative is stored at the doubled rate (the previous new weight / (1 - rate)) and
    # triggers an optimisation at once.
    assert classifier.update(sample, hard, (0.0, 0.0)) is True
    assert len(classifier.memory) == 8
    weights = classifier.memory.weights
    assert float(weights[-1] / weights[-2]) == pytest.approx(1 / (1 - hard_rate))


def test_attention_adds_the_spatially_and_the_channel_reweighted_maps():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(2, 4, 3, 3, generator=generator)
    weights = AttentionWeights(fc1_weight=torch.randn(2, 4, generator=generator),
                               fc2_weight=torch.randn(4, 2, generator=generator))
    spatial = torch.sigmoid(features.mean(dim=1, keepdim=True))
    pooled = features.mean(dim=(2, 3))
    channel = torch.sigmoid(torch.relu(pooled @ weights.fc1_weight.T) @ weights.fc2_weight.T)
    expected = features * spatial + features * channel[:, :, None, None]
    torch.testing.assert_close(dual_attention(features, weights), expected)
    # Not the product form x * spatial * channel.
    assert not torch.allclose(dual_attention(features, weights),
                              features * spatial * channel[:, :, None, None])


def test_compression_is_linear_and_the_fit_activation_saturates_at_minus_slope():
    features = torch.tensor([[[[1.0]], [[-2.0]]]])
    weight = torch.tensor([[[[1.0]], [[1.0]]]])
    assert float(compress(features, weight)) == -1.0     # no ReLU after compression
    scores = torch.tensor([-100.0, -0.05, 0.0, 0.3])
    activated = response_activation(scores, 0.05)
    torch.testing.assert_close(activated, torch.tensor(
        [-0.05, 0.05 * (torch.exp(torch.tensor(-1.0)) - 1), 0.0, 0.3]))


@pytest.mark.parametrize("kernel", [3, 4, 5])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_filter_is_the_padded_correlation_with_its_gradients(kernel, layout):
    generator = torch.Generator().manual_seed(kernel)
    features = torch.randn(3, CHANNELS, 9, 9, generator=generator).contiguous(memory_format=layout)
    weight = torch.randn(1, CHANNELS, kernel, kernel, generator=generator)
    fast, reference = weight.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    scores = apply_filter(features, fast)
    # The authors' 'same' correlation: an even kernel's extra last row and column dropped.
    expected = F.conv2d(features, reference, padding=kernel // 2)[:, 0, :9, :9]
    assert scores.shape == (3, 9, 9)
    torch.testing.assert_close(scores, expected)
    # First and second derivatives (the Gauss-Newton products differentiate a gradient).
    upstream = torch.randn(scores.shape, generator=generator, requires_grad=True)
    grad_fast, = torch.autograd.grad(scores, fast, upstream, create_graph=True)
    grad_reference, = torch.autograd.grad(expected, reference, upstream, create_graph=True)
    torch.testing.assert_close(grad_fast, grad_reference)
    direction = torch.randn(weight.shape, generator=generator)
    torch.testing.assert_close(torch.autograd.grad(grad_fast, upstream, direction)[0],
                               torch.autograd.grad(grad_reference, upstream, direction)[0])


def test_filter_step_is_the_generic_gauss_newton_step():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(5, CHANNELS, 9, 9, generator=generator).contiguous(
        memory_format=torch.channels_last)
    labels = torch.rand(5, 9, 9, generator=generator)
    weights = torch.rand(5, generator=generator)
    start = torch.randn(1, CHANNELS, 4, 4, generator=generator) / 10

    def residual(params):
        scores = response_activation(apply_filter(features, params[0]), 0.05)
        return concat_residuals([weights.sqrt()[:, None, None] * (scores - labels),
                                 math.sqrt(0.1) * params[0]])

    expected = gauss_newton(residual, [start], num_gn_iter=1, num_cg_iter=4,
                            beta_rule="polak_ribiere")
    step = filter_gauss_newton_step(features, labels, weights, start, 0.1, 0.05, 4)
    torch.testing.assert_close(step.params[0], expected.params[0])
    assert step.losses == pytest.approx(expected.losses, rel=1e-5)
    assert step.losses[1] < step.losses[0]


def test_reference_shapes_of_the_extractor():
    config = OnlineClassifierConfig(init_gn_iter=1, init_cg_iter=2)
    classifier = OnlineClassifier(CHANNELS, config)
    scene = Scene(seed=2)
    features, offsets = scene.training_set(3)
    classifier.initialise(features, offsets, (3.0, 3.0), dropout_copies=0)
    attention = classifier.attention
    assert config.compressed_channels // config.attention_reduction == 32
    assert attention.fc1_weight.shape == (32, 64) and attention.fc2_weight.shape == (64, 32)


def test_filter_update_lowers_the_memory_loss():
    classifier = _classifier_with_memory(OnlineClassifierConfig(init_gn_iter=1, init_cg_iter=2))
    losses = classifier.optimise_filter(10)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("pipeline", ["cmp", "att_cmp"])
def test_ablation_pipelines_fit(pipeline):
    config = OnlineClassifierConfig(pipeline=pipeline, init_gn_iter=2, init_cg_iter=20)
    classifier = _classifier_with_memory(config)
    embedded, scores = classifier.classify(torch.rand(2, CHANNELS, SIZE, SIZE))
    assert embedded.shape == (2, config.compressed_channels, SIZE, SIZE)
    assert scores.shape == (2, SIZE, SIZE)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="pipeline"):
        OnlineClassifierConfig(pipeline="attention_first")
    with pytest.raises(ValueError, match="init_cg_iter"):
        OnlineClassifierConfig(init_gn_iter=6, init_cg_iter=3)
    classifier = OnlineClassifier(CHANNELS)
    with pytest.raises(RuntimeError, match="before initialise"):
        classifier.classify(torch.zeros(1, CHANNELS, SIZE, SIZE))
    with pytest.raises(ValueError, match="B x 8 x H x W"):
        classifier.initialise(torch.zeros(1, 3, SIZE, SIZE), torch.zeros(1, 2), (3.0, 3.0))
    with pytest.raises(ValueError, match="target_offsets"):
        classifier.initialise(torch.zeros(2, CHANNELS, SIZE, SIZE), torch.zeros(1, 2), (3.0, 3.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_classifier_runs_on_cuda():
    scene = Scene()
    features, offsets = scene.training_set(6)
    classifier = OnlineClassifier(CHANNELS, OnlineClassifierConfig(init_gn_iter=2, init_cg_iter=10),
                                  device="cuda")
    classifier.initialise(features, offsets, (3.0, 3.0), dropout_copies=2)
    embedded, scores = classifier.classify(features[:1].cuda())
    assert scores.is_cuda and classifier.memory.features.is_cuda
    maps = classifier.score_maps(scores, 4 * SIZE + 1)
    analysis = classifier.analyse(maps[0], (3.0, 3.0))
    classifier.update(embedded, analysis, (0.0, 0.0))
    assert classifier.optimise_filter(3)[-1] >= 0
