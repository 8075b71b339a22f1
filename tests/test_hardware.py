"""--precision auto and --channels_last auto follow what the hardware has (capabilities mocked here)."""

from __future__ import annotations

import pytest
import torch

from mtl import hardware


@pytest.fixture
def cpu(monkeypatch):
    """A CPU with the given flags and oneDNN bf16 support, and no GPU."""

    def make(flags: set[str], onednn_bf16: bool) -> None:
        monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    return make


@pytest.mark.parametrize(
    ("flags", "onednn", "precision", "channels_last"),
    [
        ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, True, "bf16-mixed", True),  # Sapphire Rapids and later
        ({"avx2", "avx512f", "avx512_bf16"}, True, "bf16-mixed", True),  # Cooper Lake, Zen 4
        ({"avx2", "avx512f"}, True, "32", False),  # bf16 only emulated
        ({"avx2", "fma"}, False, "32", False),  # the AVX2-only EPYC of this session
        ({"amx_bf16"}, False, "32", False),  # oneDNN without bf16 support
    ],
)
def test_cpu_choice(cpu, flags, onednn, precision, channels_last) -> None:
    cpu(flags, onednn)
    device = hardware.device_type("auto")
    assert device == "cpu"
    chosen = hardware.choose_precision("auto", device)
    assert chosen == precision
    assert hardware.choose_channels_last("auto", chosen, device) is channels_last


@pytest.mark.parametrize(("capability", "precision"), [((9, 0), "bf16-mixed"), ((8, 0), "bf16-mixed"), ((7, 5), "16-mixed")])
def test_gpu_choice(monkeypatch, capability, precision) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    assert hardware.device_type("auto") == "cuda" and hardware.device_type("cpu") == "cpu"
    assert hardware.choose_precision("auto", "cuda") == precision
    assert hardware.choose_channels_last("auto", precision, "cuda") is True


def test_explicit_values_are_kept(cpu) -> None:
    cpu({"amx_bf16"}, True)
    assert hardware.choose_precision("32", "cpu") == "32"
    assert hardware.choose_channels_last(False, "bf16-mixed", "cpu") is False
    assert hardware.auto_bool("auto") == "auto" and hardware.auto_bool("yes") is True
