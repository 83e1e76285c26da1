"""Training in reduced precision: the forward passes autocast, the weights stay float32."""
import pytest
import torch

from siam_tracking_ros.core import device as device_module
from siam_tracking_ros.train.loop import TrainConfig, autocast_dtype, run_training

CPU, CUDA = torch.device('cpu'), torch.device('cuda')


def test_autocast_dtype_follows_the_precision(monkeypatch):
    monkeypatch.setattr(device_module, 'cpu_supports_bf16', lambda: False)
    assert autocast_dtype('fp32', False, CPU) is None
    assert autocast_dtype('auto', False, CPU) is None  # no native bf16: plain float32
    assert autocast_dtype('bf16', False, CPU) is torch.bfloat16
    assert autocast_dtype('auto', False, CUDA) is torch.float16
    assert autocast_dtype('fp32', True, CUDA) is torch.bfloat16  # the older --amp switch
    assert autocast_dtype('fp32', True, CPU) is None


def test_unknown_training_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match='unknown precision'):
        TrainConfig(tracker='siamfc_alexnet', data=('x',), out=tmp_path, precision='int8')


def test_bf16_training_steps_keep_float32_weights(coco_folder, tmp_path):
    config = TrainConfig(tracker='siamfc_alexnet', data=(str(coco_folder),), out=tmp_path / 'run',
                         epochs=1, steps_per_epoch=2, batch_size=2, device='cpu', seed=0,
                         progress=False, precision='bf16')
    metadata = run_training(config)
    assert metadata['precision'] == 'bfloat16' and metadata['steps_done'] == 2
    assert torch.isfinite(torch.tensor(metadata['final_loss']))
    state = torch.load(tmp_path / 'run' / 'last.pth', weights_only=True)['state_dict']
    assert all(value.dtype is torch.float32 for value in state.values()
               if value.is_floating_point())
