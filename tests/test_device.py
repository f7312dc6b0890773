"""``resolve_device``: the one place a device name becomes a torch device."""

from __future__ import annotations

import pytest
import torch

from congruence.core.device import resolve_device
from congruence.core.settings import Settings, load_settings

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def test_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_is_cuda_when_present_else_cpu() -> None:
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@no_cuda
def test_auto_without_cuda_is_the_cpu() -> None:
    assert resolve_device("auto").type == "cpu"


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_cuda_says_so(name: str) -> None:
    with pytest.raises(ValueError) as e:
        resolve_device(name)
    assert str(e.value) == "device: cuda was asked for but is not available"


@no_cuda
def test_encoders_and_training_use_it() -> None:
    from congruence.encoders.torch_models import text_encoder
    from congruence.training.loop import TrainConfig, train
    from tests.training.training_synthetic import make_postsets

    postsets, pairs = make_postsets()
    for load in (lambda: text_encoder("minilm-l6", "cuda"), lambda: train(postsets, pairs, TrainConfig(device="cuda"))):
        with pytest.raises(ValueError, match="^device: cuda was asked for but is not available$"):
            load()


def test_the_suite_runs_on_the_cpu(settings: Settings) -> None:
    """The tests pin the CPU (conftest), so what they train and compare is the same on a GPU host."""
    assert settings.device == "cpu" and load_settings().device == "cpu"
