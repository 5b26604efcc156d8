"""The Train map form's choices: schedules, image sizes, the input's description, defaults."""

import numpy as np
import pytest

from napari_tsimcne.plugin.layer_layout import describe_layout
from napari_tsimcne.plugin.training_choices import (
    CUSTOM,
    describe_input,
    epochs_text,
    form_defaults,
    image_size_choices,
    parse_epochs,
    schedule_named,
)


def test_epochs_are_read_from_text():
    assert parse_epochs("40, 5, 15") == (40, 5, 15)
    assert parse_epochs(" 30 ") == (30,)
    for bad in ("many", "1, 2", "0, 5, 5", "-1"):
        with pytest.raises(ValueError, match="not a training plan"):
            parse_epochs(bad)


def test_typed_epochs_name_their_preset():
    assert epochs_text((1000, 50, 450)) == "1000, 50, 450"
    assert schedule_named(" 1000, 50, 450 ") == "paper"
    assert schedule_named("10, 2, 3") == CUSTOM


def test_image_sizes_offered_are_smaller_with_the_default_among_them():
    assert image_size_choices(None) == [("as is", None)]
    assert image_size_choices((64, 64)) == [("as is (64×64 px)", None), ("48 px", 48),
                                            ("32 px", 32), ("24 px", 24), ("16 px", 16)]
    shrunk = image_size_choices((300, 200), default=(256, 168))
    assert shrunk[:3] == [("as is (300×200 px)", None), ("256×168 px", (256, 168)),
                          ("96 px", 96)]


def test_the_input_is_described_as_a_stack_or_as_object_crops():
    stack = [describe_layout((20, 64, 48)), describe_layout((20, 64, 48))]
    described = describe_input(stack)
    assert described.summary == "20 images, 64×48 px, 2 channel(s)"
    assert (described.n_images, described.size, described.n_channels) == (20, (64, 48), 2)
    field = [describe_layout((512, 512, 3), rgb=True, single_ok=True)]
    crops = describe_input(field, objects=("cells", 60), crop_size=32)
    assert crops.summary == "One 32×32 px crop per object of 'cells', 3 channel(s)"
    assert (crops.n_images, crops.size) == (60, (32, 32))
    assert describe_input([]) is None


def test_form_defaults_resolve_the_device_name():
    defaults = form_defaults(300, 64, 64, 1, np.uint16, "cpu")
    assert (defaults.batch_size, defaults.image_size, defaults.augmentation) == (
        32, 32, "microscopy")
