import pytest
import torch

from siam_tracking_ros.core.device import resolve_device, resolve_dtype


def test_cpu_and_auto():
    assert resolve_device('cpu') == torch.device('cpu')
    assert resolve_device(' CPU ') == torch.device('cpu')
    expected = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert resolve_device('auto').type == expected
    assert resolve_device(torch.device('cpu')) == torch.device('cpu')


@pytest.mark.parametrize('text', ['gpu', 'cuda:x', 'tpu:0', ''])
def test_unknown_device_strings_raise(text):
    with pytest.raises(ValueError, match='unknown device'):
        resolve_device(text)


def test_non_string_raises():
    with pytest.raises(ValueError, match='string or torch.device'):
        resolve_device(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
@pytest.mark.parametrize('text', ['cuda', 'cuda:0'])
def test_cuda_without_cuda_raises(text):
    with pytest.raises(ValueError, match='CUDA is not available'):
        resolve_device(text)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA is not available')
def test_cuda_index_out_of_range_raises():
    with pytest.raises(ValueError, match='CUDA device'):
        resolve_device(f'cuda:{torch.cuda.device_count()}')


def test_dtype_rules():
    assert resolve_dtype(torch.device('cpu'), False) == torch.float32
    with pytest.warns(UserWarning, match='ignored on CPU'):
        assert resolve_dtype(torch.device('cpu'), True) == torch.float32
    assert resolve_dtype(torch.device('cuda'), True) == torch.float16
