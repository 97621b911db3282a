"""Models and tasks: builtin architectures, user classes, loss choice and device resolution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from torch import nn

from adamtune.config.schema import Settings, load_config
from adamtune.errors import ConfigError
from adamtune.task.build import build_task, resolve_device
from adamtune.task.data import TensorSplit, load_data
from adamtune.task.models import build_model, count_parameters

if TYPE_CHECKING:
    from conftest import WriteModule

NO_GPU = not torch.cuda.is_available()


def settings_for(write_config: Callable[..., Path], text: str) -> Settings:
    return load_config(write_config(text, file="model.yaml"))


def built(write_config: Callable[..., Path], text: str) -> tuple[nn.Module, torch.Tensor]:
    settings = settings_for(write_config, text)
    data = load_data(settings)
    assert isinstance(data.train, TensorSplit)
    return build_model(settings, data), data.train.x[:5]


def test_linear_on_digits(write_config: Callable[..., Path]) -> None:
    model, x = built(write_config, "data:\n  source: digits\nmodel:\n  arch: linear\n")
    assert model(x).shape == (5, 10)
    assert [type(m) for m in model.children()] == [nn.Flatten, nn.Linear]
    assert count_parameters(model) == 64 * 10 + 10


def test_mlp_on_digits(write_config: Callable[..., Path]) -> None:
    model, x = built(
        write_config, "data:\n  source: digits\nmodel:\n  arch: mlp\n  hidden: [32, 16]\n"
    )
    assert model(x).shape == (5, 10)
    widths = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [32, 16, 10]
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


def test_mlp_dropout_is_present_when_asked(write_config: Callable[..., Path]) -> None:
    model, x = built(
        write_config, "data:\n  source: iris\nmodel:\n  hidden: [16, 8]\n  dropout: 0.25\n"
    )
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 2 and all(d.p == 0.25 for d in dropouts)
    assert model(x).shape == (5, 3)


def test_cnn_on_digits(write_config: Callable[..., Path]) -> None:
    model, x = built(
        write_config,
        "data:\n  source: digits\nmodel:\n  arch: cnn\n  channels: [4, 8]\n  hidden: [16]\n",
    )
    assert model(x).shape == (5, 10)


def test_cnn_on_image_shaped_npz(tmp_path: Path, write_config: Callable[..., Path]) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "img.npz", x=rng.random((50, 1, 8, 8)), y=np.arange(50) % 4)
    model, x = built(
        write_config,
        "data:\n  source: img.npz\n  batch_size: 8\nmodel:\n"
        "  arch: cnn\n  channels: [4, 8]\n  hidden: [16]\n",
    )
    assert model(x).shape == (5, 4)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 2


def test_cnn_on_grayscale_npz_without_channel_axis(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "gray.npz", x=rng.random((50, 8, 8)), y=np.arange(50) % 4)
    model, x = built(
        write_config,
        "data:\n  source: gray.npz\n  batch_size: 8\nmodel:\n"
        "  arch: cnn\n  channels: [4]\n  hidden: [16]\n",
    )
    assert model(x).shape == (5, 4)


def test_cnn_on_tabular_data_names_model_arch(write_config: Callable[..., Path]) -> None:
    path = write_config("data:\n  source: iris\nmodel:\n  arch: cnn\n", file="cnn.yaml")
    settings = load_config(path)
    with pytest.raises(ConfigError) as info:
        build_model(settings, load_data(settings))
    assert str(info.value).startswith(f"{path}:4: model.arch: cnn needs image-shaped inputs")


def test_user_model_gets_the_data_sizes(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module("""
        from torch import nn

        class Net(nn.Module):
            def __init__(self, in_features, out_features, width=8):
                super().__init__()
                self.sizes = (in_features, out_features, width)
                self.body = nn.Sequential(nn.Linear(in_features, width), nn.ReLU(),
                                          nn.Linear(width, out_features))

            def forward(self, x):
                return self.body(x)
    """)
    model, x = built(
        write_config,
        f"data:\n  source: iris\nmodel:\n  arch: {module}:Net\n  kwargs: {{width: 5}}\n",
    )
    assert model.sizes == (4, 3, 5)
    assert model(x).shape == (5, 3)


def test_user_model_other_size_names_and_kwargs_win(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module("""
        from torch import nn

        class Net(nn.Module):
            def __init__(self, input_shape, num_classes):
                super().__init__()
                self.seen = (input_shape, num_classes)
                self.lin = nn.Linear(input_shape[0], num_classes)

            def forward(self, x):
                return self.lin(x)
    """)
    model, _ = built(write_config, f"data:\n  source: wine\nmodel:\n  arch: {module}:Net\n")
    assert model.seen == ((13,), 3)
    model, _ = built(
        write_config,
        f"data:\n  source: wine\nmodel:\n  arch: {module}:Net\n  kwargs: {{num_classes: 7}}\n",
    )
    assert model.seen == ((13,), 7)


def test_user_model_that_is_not_a_module(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module("def make(in_features):\n    return 'a string'\n")
    path = write_config(f"data:\n  source: iris\nmodel:\n  arch: {module}:make\n", file="m.yaml")
    settings = load_config(path)
    with pytest.raises(ConfigError) as info:
        build_model(settings, load_data(settings))
    assert str(info.value) == (
        f"{path}:4: model.arch: {module}:make must return a torch.nn.Module (got str)"
    )


@pytest.mark.parametrize(
    ("body", "attr", "fragment"),
    [
        ("WIDTH = 3\n", "WIDTH", "is not a class or function"),
        ("X = 1\n", "Missing", "cannot import"),
    ],
    ids=["not-callable", "missing"],
)
def test_user_model_import_problems(
    write_config: Callable[..., Path], user_module: WriteModule, body: str, attr: str, fragment: str
) -> None:
    module = user_module(body)
    path = write_config(f"data:\n  source: iris\nmodel:\n  arch: {module}:{attr}\n", file="m.yaml")
    settings = load_config(path)
    with pytest.raises(ConfigError) as info:
        build_model(settings, load_data(settings))
    assert str(info.value).startswith(f"{path}:4: model.arch: ")
    assert fragment in str(info.value)


def test_user_model_bad_arguments_name_model_kwargs(
    write_config: Callable[..., Path], user_module: WriteModule
) -> None:
    module = user_module("""
        from torch import nn

        class Net(nn.Module):
            def __init__(self, depth):
                super().__init__()
    """)
    path = write_config(
        f"data:\n  source: iris\nmodel:\n  arch: {module}:Net\n  kwargs: {{width: 3}}\n",
        file="m.yaml",
    )
    settings = load_config(path)
    with pytest.raises(ConfigError) as info:
        build_model(settings, load_data(settings))
    assert str(info.value).startswith(f"{path}:5: model.kwargs: cannot build {module}:Net")


def test_loss_auto_follows_the_data(write_config: Callable[..., Path]) -> None:
    iris = build_task(settings_for(write_config, "data:\n  source: iris\n"))
    assert iris.loss_name == "cross_entropy"
    assert iris.loss_fn is torch.nn.functional.cross_entropy
    diabetes = build_task(settings_for(write_config, "data:\n  source: diabetes\n"))
    assert diabetes.loss_name == "mse"
    out, y = torch.randn(8, 1), torch.randn(8)  # a Dataset's scalar targets are reshaped
    assert torch.equal(diabetes.loss_fn(out, y), torch.nn.functional.mse_loss(out, y[:, None]))


def test_explicit_mse_on_class_labels(write_config: Callable[..., Path]) -> None:
    task = build_task(settings_for(write_config, "data:\n  source: iris\ntrain:\n  loss: mse\n"))
    assert task.loss_name == "mse" and task.data.out_features == 1
    assert isinstance(task.data.train, TensorSplit)
    assert task.data.train.y.dtype == torch.float32 and task.data.train.y.shape == (120, 1)


def test_cross_entropy_on_regression_is_refused(write_config: Callable[..., Path]) -> None:
    path = write_config(
        "data:\n  source: diabetes\ntrain:\n  loss: cross_entropy\n", file="ce.yaml"
    )
    with pytest.raises(ConfigError) as info:
        build_task(load_config(path))
    expected = "train.loss: cross_entropy needs integer or text class labels"
    assert str(info.value) == f"{path}:4: {expected}"


def test_task_counts_parameters_and_describes_itself(write_config: Callable[..., Path]) -> None:
    task = build_task(
        settings_for(
            write_config, "data:\n  source: iris\nmodel:\n  hidden: [16]\ntrain:\n  device: cpu\n"
        )
    )
    assert task.n_params == (4 * 16 + 16) + (16 * 3 + 3)
    assert task.device == torch.device("cpu")
    assert "iris" in task.describe() and "cross_entropy" in task.describe()


@pytest.mark.skipif(not NO_GPU, reason="a CUDA GPU is visible")
def test_auto_device_is_cpu_here() -> None:
    if torch.backends.mps.is_available():
        pytest.skip("MPS is available")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not NO_GPU, reason="a CUDA GPU is visible")
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_gpu_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device(name)
    assert str(info.value) == f"{name}: no CUDA GPU is visible to torch on this machine"


@pytest.mark.skipif(not NO_GPU, reason="a CUDA GPU is visible")
def test_device_problems_name_their_source(write_config: Callable[..., Path]) -> None:
    path = write_config("data: {source: iris}\ntrain:\n  device: cuda\n")
    with pytest.raises(ConfigError) as info:
        build_task(load_config(path))
    assert str(info.value).startswith(f"{path}:3: train.device: cuda: no CUDA GPU")
    with pytest.raises(ConfigError) as info:
        build_task(load_config(path), "cuda:0")
    # The core names the argument; the CLI shows it as the flag.
    assert str(info.value).startswith("device: cuda:0: no CUDA GPU")
    assert info.value.as_flag().startswith("--device: cuda:0: no CUDA GPU")  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["gpu", "cuda:", "CPU", ""])
def test_bad_device_name(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device(name)
    assert f"(got {name!r})" in str(info.value)


@pytest.mark.skipif(NO_GPU, reason="needs a CUDA GPU")
def test_task_on_cuda(write_config: Callable[..., Path]) -> None:
    assert resolve_device("cuda") == torch.device("cuda")
    task = build_task(
        settings_for(
            write_config, "data:\n  source: iris\nmodel:\n  hidden: [16]\ntrain:\n  device: cuda\n"
        )
    )
    assert task.device.type == "cuda"
    assert isinstance(task.data.train, TensorSplit) and task.data.train.x.is_cuda
    model = task.new_model(0)
    assert next(model.parameters()).is_cuda
    assert model(task.data.train.x[:5]).shape == (5, 3)
    with pytest.raises(ConfigError):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
