"""Training images from layer data: layouts, channel layers, object crops."""

import numpy as np
import pytest

from napari_tsimcne.plugin.layer_layout import (
    TrainingRequest,
    channels_last,
    count_objects,
    crop_objects,
    default_channel_layers,
    default_crop_size,
    default_inputs,
    describe_layout,
    stack_layers,
    training_images,
)


@pytest.mark.parametrize(
    ("shape", "rgb", "expected"),
    [
        ((10, 32, 24), False, (10, (32, 24), 1, 0, None)),
        ((10, 32, 24, 3), True, (10, (32, 24), 3, 0, -1)),
        ((10, 32, 24, 4), True, (10, (32, 24), 3, 0, -1)),  # alpha is ignored
        ((10, 2, 32, 24), False, (10, (32, 24), 2, 0, 1)),
        ((3, 10, 32, 24), False, (10, (32, 24), 3, 1, 0)),
    ],
)
def test_layouts_of_stacks(shape, rgb, expected):
    layout = describe_layout(shape, rgb)
    assert (layout.n_images, layout.size, layout.n_channels, layout.stack_axis,
            layout.channel_axis) == expected


def test_a_single_image_needs_labels():
    with pytest.raises(ValueError, match="single 2-D image of 32x24 pixels.*Labels"):
        describe_layout((32, 24), name="photo")
    assert describe_layout((32, 24, 3), rgb=True, single_ok=True).n_images is None


def test_two_long_leading_axes_are_refused():
    with pytest.raises(ValueError, match="neither of the two leading axes"):
        describe_layout((20, 30, 16, 16))


def test_channels_last_is_a_view_in_the_right_order():
    data = np.arange(5 * 2 * 4 * 6).reshape(5, 2, 4, 6)
    stack, axis = channels_last(data)
    assert stack.shape == (5, 4, 6, 2) and axis == 0
    assert np.shares_memory(stack, data)
    np.testing.assert_array_equal(stack[..., 1], data[:, 1])


def test_layers_of_the_same_shape_become_channels():
    nucleus, cell = np.zeros((5, 8, 8)), np.ones((5, 8, 8))
    stack, axis = stack_layers([nucleus, cell], [False, False], ["nucleus", "cell"])
    assert stack.shape == (5, 8, 8, 2) and axis == 0
    np.testing.assert_array_equal(stack[..., 1], cell)
    with pytest.raises(ValueError, match="'nucleus' \\(5, 8, 8\\), 'other' \\(4, 8, 8\\)"):
        stack_layers([nucleus, np.zeros((4, 8, 8))], [False, False], ["nucleus", "other"])


def test_default_layers_are_the_first_stack_and_its_channel_partners():
    shapes = [(64, 64), (5, 8, 8), (5, 8, 8), (5, 8, 8, 3), (7, 8, 8)]
    rgb = [False, False, False, True, False]
    assert default_channel_layers(shapes, rgb) == [1, 2]
    assert default_channel_layers(shapes[3:], rgb[3:]) == [0]
    assert default_channel_layers([(64, 64), (9, 9), (64, 64)], [False] * 3) == [0, 2]
    assert default_channel_layers([], []) == []
    assert default_channel_layers(shapes, rgb, n_images=7) == [4]
    assert default_channel_layers(shapes, rgb, n_images=9) == []


def test_labels_are_chosen_with_the_image_layers_they_cover():
    stack, field, photo = (10, 64, 64), (512, 512), (512, 512, 3)
    # A field split into two channel layers, and its labels: all three.
    assert default_inputs([field, field], [False, False], [field]) == ([0, 1], 0)
    # Labels of another size cover nothing: the stack alone, as without labels.
    assert default_inputs([stack, field], [False, False], [(9, 9)]) == ([0], None)
    assert default_inputs([stack, field], [False, False], [(9, 9), field]) == ([1], 1)
    assert default_inputs([photo, field], [True, False], [field]) == ([0], 0)  # RGB alone
    assert default_inputs([stack], [False], [(10, 64, 64)]) == ([0], 0)  # a labelled time-lapse
    assert default_inputs([], [], [field]) == ([], None)


def square_objects():
    """A 40x40 two-channel image with objects 1 (4x4 inside) and 2 (3x3 at the border)."""
    image = np.full((40, 40, 2), 7.0)
    labels = np.zeros((40, 40), int)
    labels[10:14, 20:24] = 1
    image[10:14, 20:24] = [100, 50]
    labels[0:3, 37:40] = 2
    image[0:3, 37:40] = [30, 60]
    return image, labels


def test_crops_are_centred_and_measured():
    image, labels = square_objects()
    crops = crop_objects(image, labels, 8)
    assert crops.images.shape == (2, 8, 8, 2)
    # object 1 has its centroid at (11.5, 21.5): the crop starts 4 px before the rounded centre
    np.testing.assert_array_equal(crops.images[0, 2:6, 2:6, 0], 100)
    table = crops.table
    assert table["label"].tolist() == [1, 2] and table["frame"].tolist() == [0, 0]
    assert table["area"].tolist() == [16, 9]
    assert table[["mean_intensity_0", "mean_intensity_1"]].to_numpy().tolist() == [[100, 50], [30, 60]]
    np.testing.assert_allclose(table[["centroid_row", "centroid_col"]], [[11.5, 21.5], [1, 38]])


def test_crops_over_the_border_are_padded_with_the_background():
    image, labels = square_objects()
    border_crop = crop_objects(image, labels, 8).images[1]
    assert border_crop[0, 0, 0] == 7.0  # the median, not zero
    assert border_crop[-1, -1, 1] == 7.0


def test_crops_from_a_stack_record_their_frame():
    image, labels = square_objects()
    crops = crop_objects(np.stack([image, image]), np.stack([labels, labels * 0]), 8)
    assert crops.table["frame"].tolist() == [0, 0]
    crops = crop_objects(np.stack([image, image]), np.stack([labels * 0, labels]), 8)
    assert crops.table["frame"].tolist() == [1, 1]


def test_bad_labels_are_refused():
    image, labels = square_objects()
    with pytest.raises(ValueError, match="no objects"):
        crop_objects(image, labels * 0, 8)
    with pytest.raises(ValueError, match="same pixels"):
        crop_objects(image, labels[:30], 8)
    with pytest.raises(ValueError, match="integers"):
        crop_objects(image, labels.astype(float), 8)


def test_objects_are_counted_per_frame_as_they_are_cropped():
    image, labels = square_objects()
    assert count_objects(labels) == len(crop_objects(image, labels, 8).images) == 2
    renumbered = np.stack([labels, labels * 0, labels])  # 1 and 2 again in the third frame
    assert count_objects(renumbered) == len(crop_objects(np.stack([image] * 3), renumbered,
                                                         8).images) == 4
    assert count_objects(renumbered) > renumbered.max()


def test_default_crop_size_fits_most_objects():
    labels = np.zeros((200, 200), int)
    for k in range(10):
        labels[20 * k : 20 * k + 18, 5:20] = k + 1
    assert default_crop_size(labels) == 24  # 18 px * 1.25 = 22.5, rounded up to 8s
    assert default_crop_size(labels * 0) == 16


def test_training_images_check_the_count():
    image, labels = square_objects()
    request = TrainingRequest([image[..., 0]], [False], ["field"], labels=labels, crop_size=8)
    prepared = training_images(request)
    assert prepared.images.shape == (2, 8, 8, 1) and prepared.stack_axis is None
    request.labels = (labels == 1).astype(int)
    with pytest.raises(ValueError, match="only 1 object"):
        training_images(request)
    request.min_images = 1
    assert len(training_images(request).images) == 1
    with pytest.raises(ValueError, match="only 1 image"):
        training_images(TrainingRequest([np.zeros((1, 8, 8))], [False], ["one"]))
