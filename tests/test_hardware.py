"""--precision auto and --channels_last auto follow what the hardware has (capabilities mocked here), and
MTL_HARDWARE chooses for other hardware than the detected one."""

from __future__ import annotations

import pytest
import torch
import yaml

from mtl import hardware
from mtl.cli.main import main


@pytest.fixture
def cpu(monkeypatch):
    """A CPU with the given flags and oneDNN bf16 support, and no GPU; MTL_HARDWARE unset."""

    def make(flags: set[str], onednn_bf16: bool) -> None:
        monkeypatch.delenv(hardware.HARDWARE_ENV, raising=False)
        monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn_bf16)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    return make


@pytest.fixture
def gpu(monkeypatch):
    """A GPU of the given compute capability; MTL_HARDWARE unset."""

    def make(capability: tuple[int, int]) -> None:
        monkeypatch.delenv(hardware.HARDWARE_ENV, raising=False)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Test GPU")

    return make


@pytest.mark.parametrize(
    ("flags", "onednn", "kind", "precision", "channels_last", "reason"),
    [
        ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, True, "amx", "bf16-mixed", True,
         "bf16-mixed + channels_last: AMX-BF16 units (auto)"),  # Sapphire Rapids and later
        ({"avx2", "avx512f", "avx512_bf16"}, True, "avx512_bf16", "bf16-mixed", True,
         "bf16-mixed + channels_last: AVX512-BF16 units (auto)"),  # Cooper Lake, Zen 4
        ({"avx2", "avx512f"}, True, "avx2", "32", False, "fp32: no bf16 units (AVX2) (auto)"),  # bf16 only emulated
        ({"avx2", "fma"}, False, "avx2", "32", False, "fp32: no bf16 units (AVX2) (auto)"),  # AVX2-only Zen 3
        ({"amx_bf16"}, False, "cpu", "32", False, "fp32: no bf16 units (auto)"),  # oneDNN without bf16 support
    ],
)
def test_cpu_choice(cpu, flags, onednn, kind, precision, channels_last, reason) -> None:
    cpu(flags, onednn)
    choice = hardware.choose("auto", "auto", "auto")
    assert (choice.device, choice.hardware.kind, choice.precision, choice.channels_last) == ("cpu", kind, precision, channels_last)
    assert choice.reason == reason and not choice.grad_scaler and not choice.hardware.overridden


@pytest.mark.parametrize(
    ("capability", "precision", "scaler"), [((9, 0), "bf16-mixed", False), ((8, 0), "bf16-mixed", False), ((7, 5), "16-mixed", True)]
)
def test_gpu_choice(gpu, capability, precision, scaler) -> None:
    gpu(capability)
    choice = hardware.choose("auto", "auto", "auto")
    assert (choice.device, choice.precision, choice.channels_last, choice.grad_scaler) == ("cuda", precision, True, scaler)
    assert choice.hardware.kind == f"cuda_sm{capability[0]}{capability[1]}"
    assert hardware.choose("auto", "auto", "cpu").device == "cpu"


def test_explicit_values_are_kept(cpu) -> None:
    cpu({"amx_bf16", "avx2"}, True)
    choice = hardware.choose("32", False, "auto")
    assert (choice.precision, choice.channels_last) == ("32", False)
    assert choice.reason == "fp32: --precision 32"
    assert hardware.choose("bf16-mixed", "auto", "auto").channels_last is True
    assert hardware.auto_bool("auto") == "auto" and hardware.auto_bool("yes") is True


# Every kind MTL_HARDWARE accepts, with the choice it makes on any machine: the three paths (fp32; bf16-mixed +
# channels_last; 16-mixed + channels_last + gradient scaler) that tests/test_precision_paths.py runs end to end.
KINDS = {
    "avx2": ("32", False, False),
    "cpu": ("32", False, False),
    "avx512_bf16": ("bf16-mixed", True, False),
    "amx": ("bf16-mixed", True, False),
    "cuda_sm80": ("bf16-mixed", True, False),
    "cuda_sm90": ("bf16-mixed", True, False),
    "cuda_sm70": ("16-mixed", True, True),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("detected", ["avx2_cpu", "gpu"])
def test_override_chooses_for_the_named_hardware(cpu, gpu, monkeypatch, kind: str, detected: str) -> None:
    cpu({"avx2", "fma"}, False)
    if detected == "gpu":
        gpu((9, 0))
    monkeypatch.setenv(hardware.HARDWARE_ENV, kind)
    choice = hardware.choose("auto", "auto", "auto")
    assert (choice.precision, choice.channels_last, choice.grad_scaler) == KINDS[kind]
    assert choice.hardware.kind == kind and choice.hardware.overridden
    # A CPU kind keeps the run on the CPU; a CUDA kind uses the GPU where there is one, else the CPU.
    assert choice.device == ("cuda" if kind.startswith("cuda") and detected == "gpu" else "cpu")
    assert choice.detected.kind == ("avx2" if choice.device == "cpu" else "cuda_sm90")
    assert f"MTL_HARDWARE={kind}" in choice.reason
    record = choice.record()
    assert record["hardware"] == kind and record["hardware_overridden"] is True
    assert record["hardware_detected"] == choice.detected.kind and record["precision"] == KINDS[kind][0]
    # Explicit flags still win over the named hardware.
    assert hardware.choose("32", False, "auto").precision == "32"


def test_override_to_a_gpu_on_a_cpu_says_where_it_runs(cpu, monkeypatch) -> None:
    cpu({"avx2", "fma"}, False)
    monkeypatch.setenv(hardware.HARDWARE_ENV, "cuda_sm70")
    assert hardware.choose("auto", "auto", "auto").reason == (
        "16-mixed + channels_last + gradient scaler: a GPU of compute capability 7.0 (auto); "
        "MTL_HARDWARE=cuda_sm70 (detected: avx2); running on the CPU"
    )


@pytest.mark.parametrize("value", ["avx3", "cuda", "cuda_sm", "gpu", "AVX2 "])
def test_override_names_are_checked(monkeypatch, value: str) -> None:
    monkeypatch.setenv(hardware.HARDWARE_ENV, value)
    if value.strip().lower() == "avx2":  # case and surrounding blanks are forgiven
        assert hardware.overridden_kind() == hardware.Hardware("avx2", overridden=True)
        return
    with pytest.raises(hardware.HardwareError, match="names no hardware"):
        hardware.overridden_kind()


def test_a_wrong_override_stops_every_command_with_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setenv(hardware.HARDWARE_ENV, "sm80")
    assert main(["train", "--dataset_root", "/nonexistent"]) == 2
    assert main(["data", "check", "--root", "/nonexistent"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mtl: MTL_HARDWARE='sm80' names no hardware; use one of amx, avx512_bf16, avx2, cpu or cuda_sm<major><minor> "
        "(e.g. cuda_sm80), or unset it to detect the hardware"
    ] * 2


def test_detected_hardware_is_recorded_and_announced(tiny_dataset, tmp_path, monkeypatch, capsys) -> None:
    """Without MTL_HARDWARE (the suite sets it, see conftest), the run records what this machine has."""
    from conftest import FAST_TRAIN_FLAGS

    monkeypatch.delenv(hardware.HARDWARE_ENV)
    run = tmp_path / "run"
    flags = ["--num_epochs", "1", "--prepare_submission", "no", "--num_steps_visualization_first", "0", "--accelerator", "cpu"]
    assert main(["train", "--dataset_root", str(tiny_dataset), "--log_dir", str(run), *FAST_TRAIN_FLAGS, *flags]) == 0
    recorded = yaml.safe_load((run / "hardware.yaml").read_text())
    detected = hardware.detect("cpu")
    assert recorded["hardware"] == recorded["hardware_detected"] == detected.kind
    assert recorded["hardware_overridden"] is False and recorded["bf16_units"] is detected.bf16_units
    assert recorded["precision"] == ("bf16-mixed" if detected.bf16_units else "32")
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"mtl train: {recorded['reason']} [{hardware.machine_label(recorded)}]"
