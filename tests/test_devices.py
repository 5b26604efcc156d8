"""The rules about devices: names, backbones, bf16, free memory and the settings they imply."""

from __future__ import annotations

import numpy as np
import torch

from napari_tsimcne import devices
from napari_tsimcne.defaults import GPU_BATCH_SIZE, data_defaults
from napari_tsimcne.devices import (
    CPU_BACKBONE, GPU_BACKBONE, available_devices, defaults_for_device, native_bf16,
    resolve_backbone, resolve_device,
)
from napari_tsimcne.memory import training_bytes
from napari_tsimcne.trainer import Accelerations

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_backbone_is_small_on_a_cpu_and_the_paper_s_on_a_gpu():
    assert resolve_backbone("auto", CPU) == CPU_BACKBONE == "resnet10-w16"
    assert resolve_backbone("auto", CUDA) == GPU_BACKBONE == "resnet18"
    assert resolve_backbone("auto", torch.device("mps")) == GPU_BACKBONE
    assert resolve_backbone("resnet34", CPU) == "resnet34"


def test_the_devices_offered_are_those_found(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert available_devices() == ["auto", "cpu"]
    assert resolve_device("auto") == CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert available_devices() == ["auto", "cpu", "cuda"]
    assert resolve_device("auto") == CUDA


def test_bf16_is_native_only_where_the_hardware_says_so(monkeypatch):
    assert native_bf16(torch.device("mps")) is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert native_bf16(CPU) is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bf16(CPU) is True
    assert Accelerations.for_device(CPU).autocast_dtype == torch.bfloat16


def test_free_memory_of_the_cpu_is_a_positive_number_of_bytes():
    free = devices.free_memory(CPU)
    assert isinstance(free, int) and free > 0


def test_a_gpu_gets_the_paper_s_batch_and_backbone_where_the_images_allow(monkeypatch):
    monkeypatch.setattr(devices, "free_memory", lambda device: 80 * 2**30)
    backbone = resolve_backbone("auto", CUDA)
    defaults = defaults_for_device(CUDA, backbone, Accelerations(), 50_000, 32, 32, 3, np.uint8)
    assert (backbone, defaults.batch_size, defaults.image_size) == ("resnet18", GPU_BATCH_SIZE,
                                                                     None)
    # Little free memory: the image size shrinks until training fits, as data_defaults says.
    monkeypatch.setattr(devices, "free_memory", lambda device: 2**30)
    small = defaults_for_device(CUDA, backbone, Accelerations(), 50_000, 512, 512, 1, np.uint16)
    assert small == data_defaults(50_000, 512, 512, 1, np.uint16, "cuda", memory=2**30,
                                  training_bytes=lambda b, size: training_bytes(backbone, 1, b,
                                                                               size))
    assert small.image_size < 256
