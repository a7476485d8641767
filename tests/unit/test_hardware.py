import logging

import pytest

from parrot_lm.core import hardware


@pytest.mark.parametrize(
    "precision, accelerator, fast_bf16, warns",
    [
        ("bf16-mixed", "cpu", False, True),
        ("bf16-true", "auto", False, True),
        ("bf16-mixed", "cpu", True, False),
        ("32-true", "cpu", False, False),
    ],
)
def test_bf16_on_cpu_without_support_warns_once_in_one_sentence(
    monkeypatch, caplog, precision, accelerator, fast_bf16, warns
):
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="parrot_lm.core.hardware"):
        assert hardware.warn_if_slow_precision(precision, accelerator) is warns
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == int(warns)
    if warns:
        assert "far slower" in messages[0] and messages[0].count(". ") == 0


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("cuda", "this PyTorch build has no CUDA here; use device=cpu"),
        ("cuda:1", "this PyTorch build has no CUDA here"),
        ("bogus", "device=bogus is not a device name"),
        ("xla", "device=xla is not supported"),
    ],
)
def test_a_device_this_machine_lacks_is_one_sentence(monkeypatch, name, fragment):
    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware.torch.version, "cuda", None)
    with pytest.raises(hardware.ConfigError, match=fragment.replace("(", r"\(")):
        hardware.pick_device(name)


def test_a_gpu_index_past_the_last_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(hardware.torch.cuda, "device_count", lambda: 2)
    assert hardware.pick_device("cuda:1") == hardware.torch.device("cuda:1")
    with pytest.raises(hardware.ConfigError, match="has 2 GPU"):
        hardware.pick_device("cuda:2")
    assert hardware.pick_device("cpu") == hardware.torch.device("cpu")


def _lightning_finds(monkeypatch, *available: str) -> None:
    """Make Lightning's registered accelerators report `available` as present, the rest not."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    for name in AcceleratorRegistry.available_accelerators():
        cls = AcceleratorRegistry[name]["accelerator"]
        monkeypatch.setattr(cls, "is_available", staticmethod(lambda n=name: n in available))


@pytest.mark.parametrize(
    ("accelerator", "group", "sentence"),
    [
        (
            "gpu",
            "gpu",
            "trainer=gpu (trainer.accelerator=gpu) needs a CUDA GPU, and none is visible here "
            "(torch.cuda.is_available() is False); drop trainer=gpu to train on the CPU.",
        ),
        (
            "cuda",
            None,
            "trainer.accelerator=cuda needs a CUDA GPU, and none is visible here "
            "(torch.cuda.is_available() is False); set trainer.accelerator=cpu (or auto) to "
            "train on the CPU.",
        ),
        (
            "tpu",
            None,
            "trainer.accelerator=tpu needs a TPU, and none is visible here (torch_xla finds "
            "none); set trainer.accelerator=cpu (or auto) to train on the CPU.",
        ),
        (
            "GPU",
            None,
            "trainer.accelerator=GPU is not an accelerator Lightning knows; use one of auto, "
            "cpu, cuda, gpu, mps, tpu.",
        ),
    ],
)
def test_an_accelerator_lightning_cannot_find_is_one_sentence(
    monkeypatch, accelerator, group, sentence
):
    _lightning_finds(monkeypatch, "cpu")
    with pytest.raises(hardware.ConfigError) as e:
        hardware.check_accelerator(accelerator, group)
    assert str(e.value) == sentence


def test_an_accelerator_lightning_finds_passes(monkeypatch):
    _lightning_finds(monkeypatch, "cpu", "mps")
    for accelerator in ("auto", "cpu", "mps", "gpu"):  # gpu: CUDA or, as here, MPS
        hardware.check_accelerator(accelerator, "gpu")
    with pytest.raises(hardware.ConfigError, match="trainer.accelerator=cuda needs a CUDA GPU"):
        hardware.check_accelerator("cuda")


FAULTS_OF_64_MIB = """
import resource, sys
import torch
from parrot_lm.core.hardware import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else None
for step in range(20):  # what training steps do with activations: allocate, touch, free
    if step == 10:  # the first steps grow the heap until freed blocks fit the next ones
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(16 * 2**20)  # 64 MiB of float32
    block.fill_(1.0)
    del block
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults_of_the_last_ten_64_mib_blocks(mode: str) -> tuple[str, int]:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_64_MIB, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def test_reusing_freed_memory_stops_the_page_faults_of_each_new_block():
    import platform

    pages = 64 * 2**20 // 4096  # 16,384 faults to touch one fresh 64 MiB block
    applied, faults = _faults_of_the_last_ten_64_mib_blocks("reuse")
    if platform.libc_ver()[0] != "glibc":  # a no-op elsewhere, and says so
        assert applied == "False"
        return
    assert applied == "True"
    assert faults < pages  # the blocks reuse memory the process already touched
    _, default_faults = _faults_of_the_last_ten_64_mib_blocks("default")
    assert default_faults > 9 * pages  # glibc's default: each block mapped and faulted anew
