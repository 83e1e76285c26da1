import pytest
import torch

from siam_tracking_ros.core import device as device_module
from siam_tracking_ros.core.device import (PRECISIONS, check_precision, cpu_supports_bf16,
                                           legacy_half_precision, precision_dtype,
                                           resolve_device, resolve_precision)

CPU, CUDA = torch.device('cpu'), torch.device('cuda')


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


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16."""
    def pretend(supported: bool):
        monkeypatch.setattr(device_module, 'cpu_supports_bf16', lambda: supported)
    return pretend


def test_auto_on_a_cpu_without_bf16_is_fp32(bf16_cpu):
    bf16_cpu(False)
    assert resolve_precision('auto', CPU) == 'fp32'


def test_auto_on_a_cpu_with_bf16_is_bf16(bf16_cpu):
    bf16_cpu(True)
    assert resolve_precision('auto', CPU) == 'bf16'


def test_auto_on_cuda_is_fp16(bf16_cpu):
    bf16_cpu(True)
    assert resolve_precision('auto', CUDA) == 'fp16'


@pytest.mark.parametrize('name', ['fp32', 'bf16'])
def test_explicit_precisions_are_kept_on_the_cpu(name, bf16_cpu):
    bf16_cpu(False)
    assert resolve_precision(name, CPU) == name


def test_fp16_on_the_cpu_warns_and_runs_fp32():
    with pytest.warns(UserWarning, match='fp16 is ignored on CPU'):
        assert resolve_precision('fp16', CPU) == 'fp32'
    assert resolve_precision('fp16', CUDA) == 'fp16'


@pytest.mark.parametrize('value', ['fp64', 'half', '', None, 16])
def test_unknown_precision_names_the_choices(value):
    with pytest.raises(ValueError, match='unknown precision.*fp32, bf16, fp16, auto'):
        check_precision(value)


def test_precision_names_are_normalised():
    assert check_precision(' BF16 ') == 'bf16'
    assert set(PRECISIONS) == {'fp32', 'bf16', 'fp16', 'auto'}


def test_precision_dtypes():
    assert precision_dtype('fp32') is torch.float32
    assert precision_dtype('bf16') is torch.bfloat16
    assert precision_dtype('fp16') is torch.float16


def test_bf16_capability_reads_the_cpu_flags(monkeypatch, tmp_path):
    cpuinfo = tmp_path / 'cpuinfo'
    monkeypatch.setattr(device_module, 'CPUINFO', cpuinfo)
    for flags, expected in (('fpu sse avx512f avx512bw', False), ('fpu avx512_bf16', True),
                            ('fpu amx_tile amx_bf16', True)):
        cpuinfo.write_text(f'flags\t\t: {flags}\n')
        cpu_supports_bf16.cache_clear()
        assert cpu_supports_bf16() is expected
    cpuinfo.unlink()
    cpu_supports_bf16.cache_clear()
    assert cpu_supports_bf16() is False
    cpu_supports_bf16.cache_clear()


def test_half_is_an_alias_of_fp16_on_cuda():
    assert legacy_half_precision('fp32', False, CPU) == 'fp32'
    assert legacy_half_precision('fp32', True, CUDA) == 'fp16'
    with pytest.warns(UserWarning, match='half=True is ignored on CPU'):
        assert legacy_half_precision('fp32', True, CPU) == 'fp32'
