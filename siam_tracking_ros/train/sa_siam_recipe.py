"""Training SA-Siam's semantic branch: the S-Net classifier, then attention and fusion (eq. 4).

SA-Siam's two branches are heterogeneous on purpose (section 3.1): the A-Net is trained for
similarity, the S-Net for image classification, apart from each other. Two stages, each a
``siamtrack train`` run:

* ``sa_siam_snet``: S-Net (``extension.semantic.snet``) learns to name the object category of a
  crop around a labelled object of still-image data (COCO-format ``annotations.json``; every
  (source, category) pair is one class), with a classification head that exists only for this
  stage. With ``--init`` a SiamFC file, the A-Net weights pass through unchanged, so the output is
  a complete SA-Siam file whose attention and fusion modules are still untrained. The S-Net is
  also written alone, in torchvision's AlexNet layout, as ``snet.pth`` beside the checkpoint, so
  that it can be paired with any A-Net (``--config snet_weights=RUN/snet.pth``).
* ``sa_siam``: on top of that file (``--init``), the channel attention MLPs, the 1x1 fusion convs
  and the semantic response bias learn with SiamFC's logistic loss on the semantic response h_s
  alone (eq. 4); S-Net and A-Net stay frozen ("We do not fine-tune S-Net", section 3.3). Each
  training pair is a search-sized context crop z^s of the template frame and a search crop X.
* ``sa_siam_tune``: the ``sa_siam`` stage with S-Net's conv4 and conv5, the layers the semantic
  features come from, also learning (at a tenth of the rate by default) on the same loss of h_s
  alone, A-Net still frozen. This departs from section 3.3 on purpose: the paper's S-Net is an
  ImageNet classifier good enough to stay fixed; an S-Net trained from a few thousand labelled
  crops is not (the semantic branch alone tracked uav_dev at 0.30 AUC), and training it on the
  semantic branch's own similarity loss, apart from the A-Net, keeps the two branches trained
  separately, which is what the paper's heterogeneity argument asks for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from siam_tracking_ros.core.checkpoints import read_checkpoint
from siam_tracking_ros.core.models.semantic import SEMANTIC_LAYERS
from siam_tracking_ros.train.augment import AugmentConfig, CropConfig
from siam_tracking_ros.train.losses import balanced_logistic_loss
from siam_tracking_ros.train.pairs import PairSamplingConfig
from siam_tracking_ros.train.recipes import (RecipeConfig, SiamFCRecipe, TrainingRecipe,
                                             batch_to_model_input, load_extended_init,
                                             register_recipe, set_trainable)

SA_SIAM = 'sa_siam'
SNET_FILE = 'snet.pth'
SNET_PREFIX = 'extension.semantic.snet.'


def export_snet(checkpoint: Path, out: Path) -> Path:
    """Write the S-Net of an SA-Siam checkpoint alone, in torchvision's AlexNet layout
    (``features.N.*``, what ``load_snet_weights`` and ``--config snet_weights`` read)."""
    state_dict, _ = read_checkpoint(checkpoint)
    snet = {key[len(SNET_PREFIX):]: value.float() for key, value in state_dict.items()
            if key.startswith(SNET_PREFIX)}
    if not snet:
        raise ValueError(f'{checkpoint} holds no SA-Siam S-Net ({SNET_PREFIX}* keys)')
    torch.save(snet, out)
    return Path(out)


class SemanticClassifierHead(nn.Module):
    """Classification head on S-Net's conv5 map, used only to train S-Net.

    Shaped like torchvision AlexNet's classifier (dropout, two hidden FC layers), narrower to fit
    the data: global average pooling over space keeps it independent of the crop size.
    """

    def __init__(self, channels: int, classes: int, hidden: int = 512) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(channels, hidden), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(hidden, classes))

    def forward(self, conv5: torch.Tensor) -> torch.Tensor:
        return self.layers(conv5.mean(dim=(-2, -1)))


def class_table(tracks) -> list[tuple[str, int]]:
    """Classes of the labelled tracks: one per (source folder, category id), sorted."""
    return sorted({(track.source, int(track.category)) for track in tracks})


class SemanticClassificationRecipe(TrainingRecipe):
    """Stage 1: S-Net as an object-category classifier of crops around labelled objects."""

    def __init__(self, tracker_name: str = SA_SIAM):
        super().__init__(
            tracker_name, CropConfig(corner_rule='siamfc'),
            # The template crop is the classified view; it moves and rescales more than a
            # tracking exemplar so that the class does not hinge on exact framing.
            AugmentConfig(template_shift=12.0, template_scale=0.2, search_shift=0.0,
                          search_scale=0.0),
            PairSamplingConfig(max_gap=0),
            RecipeConfig(lr=1e-3, final_lr_ratio=0.01, weight_decay=5e-4, optimizer='adam',
                         schedule='cosine'))
        self.classes: list[tuple[str, int]] = []
        self.head: SemanticClassifierHead | None = None

    def describe(self) -> dict:
        return {**super().describe(), 'classes': [f'{Path(source).name}:{category}'
                                                  for source, category in self.classes]}

    def select_tracks(self, tracks):
        labelled = [track for track in tracks if track.category >= 0]
        self.classes = class_table(labelled)
        if len(self.classes) < 2:
            raise ValueError('S-Net classification needs objects of at least two categories: give '
                             'COCO-format still-image folders (annotations.json with '
                             f'category_id); found {len(self.classes)} categories')
        self._class_index = {key: index for index, key in enumerate(self.classes)}
        return labelled

    def load_init(self, tracker, path):
        return load_extended_init(tracker, path)

    def targets(self, crops, pair, rng):
        track = pair.template.track
        return {'label': np.int64(self._class_index[(track.source, int(track.category))])}

    def prepare(self, tracker):
        snet = tracker.model.extension.semantic.snet
        set_trainable(tracker.model, False)
        tracker.model.eval()
        set_trainable(snet, True)
        channels = snet.channels['conv5']
        if self.head is None or self.head.layers[-1].out_features != len(self.classes):
            self.head = SemanticClassifierHead(channels, len(self.classes))
        self.head.to(tracker.device).train()
        return [*snet.parameters(), *self.head.parameters()]

    def loss(self, tracker, batch):
        images = batch_to_model_input(batch['template'], 'RGB', tracker.device)
        conv5 = tracker.model.extension.semantic.snet(images)['conv5']
        logits = self.head(conv5)
        labels = batch['label'].to(tracker.device)
        loss = F.cross_entropy(logits.float(), labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return loss, {'ce': float(loss.detach()), 'error': 1.0 - float(accuracy)}

    def after_checkpoint(self, checkpoint):
        export_snet(checkpoint, checkpoint.parent / SNET_FILE)

    def training_state(self):
        return {'classes': [list(key) for key in self.classes],
                'head': self.head.state_dict() if self.head is not None else {}}

    def load_training_state(self, state):
        saved = [tuple(key) for key in state.get('classes', [])]
        if saved and saved != self.classes:
            raise ValueError('cannot resume S-Net training on different data: the run was '
                             f'started with {len(saved)} classes, this data has '
                             f'{len(self.classes)}')
        if state.get('head') and self.head is not None:
            self.head.load_state_dict(state['head'])


class SASiamFusionRecipe(SiamFCRecipe):
    """Stage 2: attention, fusion and response bias of the semantic branch (eq. 4)."""

    needs_init = True
    he_normal_convs = False

    def __init__(self, tracker_name: str = SA_SIAM):
        super().__init__(
            tracker_name,
            CropConfig(corner_rule='siamfc', template_region='search'),
            AugmentConfig(search_shift=32.0, search_scale=0.1, flip_probability=0.5),
            PairSamplingConfig(),
            RecipeConfig(lr=1e-3, final_lr_ratio=0.01, weight_decay=5e-4, optimizer='adam',
                         schedule='cosine'))

    def load_init(self, tracker, path):
        metadata = load_extended_init(tracker, path)
        if not tracker.snet_loaded:
            raise ValueError(f"--init {path} holds no S-Net: train one first "
                             "(siamtrack train --tracker sa_siam_snet --init <SiamFC weights>)")
        return metadata

    def prepare(self, tracker):
        model = tracker.model
        set_trainable(model, False)
        model.eval()
        parameters = model.extension.semantic.trainable_parameters()
        for parameter in parameters:
            parameter.requires_grad_(True)
        return parameters

    def loss(self, tracker, batch):
        context = batch_to_model_input(batch['template'], 'RGB', tracker.device)
        search = batch_to_model_input(batch['search'], 'RGB', tracker.device)
        responses = tracker.model.extension.semantic(context, search)
        loss = balanced_logistic_loss(responses.float(), batch['labels'].to(tracker.device))
        return loss, {'cls': float(loss.detach())}


class SASiamSemanticTuningRecipe(SASiamFusionRecipe):
    """``sa_siam`` with S-Net's upper layers learning too (see the module docstring)."""

    def __init__(self, tracker_name: str = SA_SIAM,
                 snet_layers: tuple[str, ...] = SEMANTIC_LAYERS, snet_lr_scale: float = 0.1):
        super().__init__(tracker_name)
        unknown = sorted(set(snet_layers) - set(SEMANTIC_LAYERS))
        if unknown or not snet_layers:
            raise ValueError(f'S-Net layers to tune must be some of {SEMANTIC_LAYERS}, got '
                             f'{snet_layers}')
        self.snet_layers = tuple(snet_layers)
        self.snet_lr_scale = snet_lr_scale

    def describe(self) -> dict:
        return {**super().describe(), 'snet_layers': list(self.snet_layers),
                'snet_lr_scale': self.snet_lr_scale}

    def prepare(self, tracker):
        branch_parameters = super().prepare(tracker)
        snet_parameters = tracker.model.extension.semantic.snet.layer_parameters(
            self.snet_layers)
        for parameter in snet_parameters:
            parameter.requires_grad_(True)
        return [{'params': branch_parameters, 'lr_scale': 1.0},
                {'params': snet_parameters, 'lr_scale': self.snet_lr_scale}]


register_recipe('sa_siam_snet', lambda name: SemanticClassificationRecipe(SA_SIAM))
register_recipe(SA_SIAM, SASiamFusionRecipe)
register_recipe('sa_siam_tune', lambda name: SASiamSemanticTuningRecipe(SA_SIAM))
