"""Loading ImageNet weights from a torchvision-format ResNet-34 file through --pretrained_path / the hub cache."""

from __future__ import annotations

import pytest
import torch

from test_models_helpers import build, make_cfg


def torchvision_resnet34_shapes() -> dict[str, tuple[int, ...]]:
    """Key names and shapes of torchvision's resnet34 state dict, written from the architecture rules."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    in_channels = 64
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for block in range(blocks):
            prefix = f"layer{layer}.{block}"
            shapes[f"{prefix}.conv1.weight"] = (planes, in_channels, 3, 3)
            bn(f"{prefix}.bn1", planes)
            shapes[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{prefix}.bn2", planes)
            if block == 0 and in_channels != planes:
                shapes[f"{prefix}.downsample.0.weight"] = (planes, in_channels, 1, 1)
                bn(f"{prefix}.downsample.1", planes)
            in_channels = planes
    shapes["fc.weight"] = (1000, 512)
    shapes["fc.bias"] = (1000,)
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.tensor(7) if key.endswith("num_batches_tracked") else torch.randn(shape, generator=generator)
        for key, shape in shapes.items()
    }


def build_encoder(*flags: str):
    return build(make_cfg("--short_circuit", *flags), {"depth": 1}).encoder


def test_reference_key_list_is_plausible():
    shapes = torchvision_resnet34_shapes()
    # torchvision's resnet34 has 21,797,672 parameters (BN buffers excluded).
    params = sum(torch.Size(s).numel() for k, s in shapes.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == 21_797_672


def test_loads_every_encoder_tensor_from_pretrained_path(tmp_path):
    state = random_state(torchvision_resnet34_shapes())
    path = tmp_path / "resnet34-b627a593.pth"
    torch.save(state, path)
    encoder = build_encoder("--pretrained", "--pretrained_path", str(path), "--dilations", "F,F,T")
    loaded = encoder.state_dict()
    expected = {k: v for k, v in state.items() if not k.startswith("fc.")}
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


def test_default_location_is_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    state = random_state(torchvision_resnet34_shapes(), seed=1)
    # Older torchvision files have no num_batches_tracked buffers; they must load too.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    target = tmp_path / "torch" / "hub" / "checkpoints" / "resnet34-b627a593.pth"
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    encoder = build_encoder("--pretrained")
    assert torch.equal(encoder.layer4[2].bn2.running_var, state["layer4.2.bn2.running_var"])


def test_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub_file = tmp_path / "torch" / "hub" / "checkpoints" / "resnet34-b627a593.pth"
    with pytest.raises(FileNotFoundError) as info:
        build_encoder("--pretrained")
    message = str(info.value)
    assert f"ImageNet weights not found: {hub_file}" in message
    assert "https://download.pytorch.org/models/resnet34-b627a593.pth" in message
    assert "--pretrained_path" in message
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match=f"ImageNet weights not found: {missing}.*put it at {hub_file}"):
        build_encoder("--pretrained", "--pretrained_path", str(missing))


def test_file_with_a_wrong_key_is_refused_naming_it(tmp_path):
    state = random_state(torchvision_resnet34_shapes())
    state["layer1.0.convX.weight"] = state.pop("layer1.0.conv1.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys \['layer1.0.conv1.weight'\]; unexpected keys \['layer1.0.convX.weight'\]"):
        build_encoder("--pretrained", "--pretrained_path", str(path))


def test_file_with_a_wrong_shape_is_refused_naming_it(tmp_path):
    state = random_state(torchvision_resnet34_shapes())
    state["layer2.0.downsample.0.weight"] = torch.zeros(128, 32, 1, 1)
    path = tmp_path / "reshaped.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"layer2.0.downsample.0.weight has shape \(128, 32, 1, 1\), the encoder expects \(128, 64, 1, 1\)"):
        build_encoder("--pretrained", "--pretrained_path", str(path))


def test_resnet18_file_does_not_fit_resnet34(tmp_path):
    shapes = {k: v for k, v in torchvision_resnet34_shapes().items() if not k.startswith(("layer1.2", "layer2.2", "layer2.3", "layer3.2", "layer3.3", "layer3.4", "layer3.5", "layer4.2"))}
    path = tmp_path / "resnet18.pth"
    torch.save(random_state(shapes), path)
    with pytest.raises(ValueError, match=r"missing keys \['layer1.2.bn1.bias'"):
        build_encoder("--pretrained", "--pretrained_path", str(path))
