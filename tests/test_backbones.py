"""ResNet backbones: names, equivalence with torchvision, output shapes."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from napari_tsimcne.backbones import make_backbone, parse_backbone_name


@pytest.mark.parametrize("name, expected", [
    ("resnet10", (10, 64)),
    ("resnet18", (18, 64)),
    ("resnet34", (34, 64)),
    ("resnet10-w8", (10, 8)),
    ("resnet18-w32", (18, 32)),
    ("resnet34-w256", (34, 256)),
    (" ResNet18-W16 ", (18, 16)),
])
def test_backbone_names_parse_to_depth_and_width(name, expected):
    assert parse_backbone_name(name) == expected


@pytest.mark.parametrize("name", [
    "resnet50", "resnet", "vgg16", "resnet18-", "resnet18-w", "resnet18w32", "18", "",
])
def test_unknown_backbone_name_is_rejected_with_the_valid_names(name):
    with pytest.raises(ValueError, match=r"Unknown backbone.*'resnet10', 'resnet18' or 'resnet34'"):
        parse_backbone_name(name)


@pytest.mark.parametrize("name", ["resnet18-w2", "resnet10-w512"])
def test_backbone_width_out_of_range_is_rejected(name):
    with pytest.raises(ValueError, match="width must be between 4 and 256"):
        make_backbone(name, 3)


def torchvision_small_image_resnet(depth, in_channels):
    """torchvision's ResNet with the CIFAR stem: 3x3 stride-1 conv1, no max-pool, no fc."""
    model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Identity()
    return model


@pytest.mark.slow
@pytest.mark.parametrize("depth", [18, 34])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_backbone_is_torchvision_resnet_layer_for_layer(depth, in_channels):
    ours = make_backbone(f"resnet{depth}", in_channels)
    reference = torchvision_small_image_resnet(depth, in_channels)
    our_shapes = [tuple(p.shape) for p in ours.parameters()]
    reference_shapes = [tuple(p.shape) for p in reference.parameters()]
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in reference.parameters())
    assert our_shapes == reference_shapes


@pytest.mark.parametrize("in_channels", [1, 3])
def test_backbone_computes_the_same_function_as_torchvision(in_channels):
    ours = make_backbone("resnet18", in_channels).eval()
    reference = torchvision_small_image_resnet(18, in_channels).eval()
    # Same layers in the same order: copying weights one to one must work
    # and give identical features.
    reference.load_state_dict(dict(zip(reference.state_dict(), ours.state_dict().values())))
    x = torch.rand(2, in_channels, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize("name, width, in_channels, side", [
    ("resnet10-w8", 8, 1, 8),
    ("resnet10-w8", 8, 2, 8),
    ("resnet10-w8", 8, 3, 16),
    ("resnet10-w8", 8, 4, 8),
    ("resnet18-w4", 4, 1, 12),
    ("resnet34-w4", 4, 4, 8),
])
def test_backbone_output_shape_is_eight_times_width(name, width, in_channels, side):
    backbone = make_backbone(name, in_channels)
    features = backbone(torch.rand(3, in_channels, side, side))
    assert backbone.out_features == 8 * width
    assert features.shape == (3, 8 * width)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("backbone, expected", [
    (None, True), ("resnet10-w16", True), ("resnet18", True), ("resnet10-w8", False),
    ("resnet10-w4", False),
])
def test_cpu_training_is_channels_last_except_for_narrow_backbones(backbone, expected):
    from napari_tsimcne.trainer import Accelerations

    cpu = Accelerations.for_device(torch.device("cpu"), "fp32", backbone=backbone)
    assert cpu.channels_last is expected
    assert Accelerations.for_device(torch.device("cuda"), "fp32", backbone=backbone).channels_last
