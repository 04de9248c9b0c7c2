"""Superpixels and perturbed inputs (`ssxwidgets.segmentation`)."""

from __future__ import annotations

import numpy as np
import pytest
from factories import images

from ssxwidgets.segmentation import (
    SEGMENTATION_NAMES,
    count_segments,
    fill_features,
    fill_masks,
    resolve_fill,
    segment,
    segment_batch,
    segment_masks,
    segment_means,
    to_pixels,
)


def _smooth_image(size: int = 48, seed: int = 0) -> np.ndarray:
    """A `(size, size, 3)` image of smooth colour regions, like a photo's."""
    from skimage.filters import gaussian

    rng = np.random.default_rng(seed)
    noise = rng.random((size, size, 3))
    return gaussian(noise, sigma=2, channel_axis=-1).astype(np.float32)


@pytest.mark.parametrize("name", SEGMENTATION_NAMES)
@pytest.mark.parametrize("n_segments", [12, 40])
def test_named_segmentations_are_consecutive_and_near_the_count(
    name: str, n_segments: int
) -> None:
    """Every named segmentation labels all pixels with consecutive ids 0..S-1
    and makes within a factor of 1.6 of `n_segments` segments."""
    labels = segment(_smooth_image(), name, n_segments)

    assert labels.shape == (48, 48)
    assert labels.dtype == np.int32
    ids = np.unique(labels)
    np.testing.assert_array_equal(ids, np.arange(len(ids)))
    assert n_segments / 1.6 <= len(ids) <= n_segments * 1.6


def test_grid_cells_are_equal_blocks() -> None:
    """A 4-segment grid on a 32×32 image is four 16×16 quadrants."""
    labels = segment(np.zeros((32, 32, 3), np.float32), "grid", 4)

    assert np.unique(labels[:16, :16]).size == 1
    assert len({labels[0, 0], labels[0, 31], labels[31, 0], labels[31, 31]}) == 4
    np.testing.assert_array_equal(np.bincount(labels.ravel()), [256] * 4)


def test_an_array_is_relabelled_to_consecutive_ids() -> None:
    """An (H, W) integer array passes through with its ids renumbered 0..S-1
    in order, the grouping unchanged."""
    given = np.where(np.arange(16)[None, :] < 8, 7, -3).repeat(16, axis=0)

    labels = segment(np.zeros((16, 16, 3)), given)

    np.testing.assert_array_equal(labels, (given == 7).astype(np.int32))


def test_a_callable_is_called_with_the_image_and_validated() -> None:
    """A callable receives the image and its map is relabelled; a map of the
    wrong shape raises a ValueError naming both shapes."""
    seen = []

    def by_rows(image: np.ndarray) -> np.ndarray:
        seen.append(image.shape)
        return np.repeat(
            np.arange(image.shape[0])[:, None] // 4 * 10, image.shape[1], axis=1
        )

    labels = segment(np.zeros((16, 8, 3)), by_rows)

    assert seen == [(16, 8, 3)]
    np.testing.assert_array_equal(np.unique(labels), np.arange(4))
    with pytest.raises(ValueError, match=r"\(16, 8\).*got \(8, 16\)"):
        segment(np.zeros((16, 8, 3)), lambda image: np.zeros((8, 16), int))


@pytest.mark.parametrize(
    ("segmentation", "pattern"),
    [
        ("watershed", "slic.*got 'watershed'"),
        (np.zeros((5, 5), int), r"\(16, 16\).*got \(5, 5\)"),
        (np.zeros((16, 16)), "integer.*float64"),
        (3.5, "callable.*got float"),
    ],
)
def test_bad_segmentations_raise_saying_what_was_expected(
    segmentation: object, pattern: str
) -> None:
    """An unknown name, an array of the wrong shape or dtype, or something
    else entirely raises a ValueError saying what was expected and got."""
    with pytest.raises(ValueError, match=pattern):
        segment(np.zeros((16, 16, 3), np.float32), segmentation)


def test_n_segments_out_of_range_is_refused() -> None:
    """n_segments of 0 or more than the pixel count raises a ValueError."""
    with pytest.raises(ValueError, match=r"\[1, 256\].*got 0"):
        segment(np.zeros((16, 16, 3)), "slic", 0)
    with pytest.raises(ValueError, match="got 257"):
        segment(np.zeros((16, 16, 3)), "grid", 257)


def test_segment_batch_segments_each_image_and_shares_an_array() -> None:
    """A name segments every image on its own; an (H, W) array serves every
    image; an (N, H, W) array gives one map per image."""
    inputs = np.stack([_smooth_image(32, seed) for seed in range(3)])

    named = segment_batch(inputs, "slic", 20)
    shared = segment_batch(inputs, named[0])
    each = segment_batch(inputs, named)

    assert named.shape == (3, 32, 32)
    np.testing.assert_array_equal(named[1], segment(inputs[1], "slic", 20))
    assert all((m == named[0]).all() for m in shared)
    np.testing.assert_array_equal(each, named)
    with pytest.raises(ValueError, match=r"\(N, H, W\).*got \(2, 32, 32\)"):
        segment_batch(inputs, named[:2])


def test_fill_masks_keeps_chosen_segments_and_fills_the_rest() -> None:
    """Each output pixel is the input's where its segment is kept in that
    row's coalition and the baseline's elsewhere, for any mix of inputs."""
    inputs = images(2, size=8)
    segments = np.stack([segment(inputs[0], "grid", 4), segment(inputs[1], "grid", 2)])
    baseline = -np.ones_like(inputs)
    z = np.array([[1, 0, 0, 1], [0, 1, 1, 1], [1, 1, 0, 0]], bool)
    rows = np.array([0, 1, 0])

    out = fill_masks(inputs, segments, z, baseline, rows)

    assert out.shape == (3, 8, 8, 3)
    for m, i in enumerate(rows):
        for h in range(8):
            for w in range(8):
                kept = z[m, segments[i, h, w]]
                want = inputs[i, h, w] if kept else baseline[i, h, w]
                np.testing.assert_array_equal(out[m, h, w], want)


def test_fill_masks_can_fill_from_other_baseline_rows() -> None:
    """With baseline_rows, an absent segment takes the named baseline row's
    pixels (e.g. a background image)."""
    inputs = images(1, size=4)
    segments = np.zeros((1, 4, 4), int)
    backgrounds = np.stack([np.full((4, 4, 3), v, np.float32) for v in (5, 6, 7)])

    out = fill_masks(
        inputs,
        segments,
        np.zeros((2, 1), bool),
        backgrounds,
        np.array([0, 0]),
        baseline_rows=np.array([2, 1]),
    )

    np.testing.assert_array_equal(out[:, 0, 0, 0], [7, 6])


def test_fill_features_keeps_chosen_features() -> None:
    """Table rows keep features where z is true and take the baseline's value
    elsewhere."""
    inputs = np.arange(6, dtype=np.float32).reshape(2, 3)
    baseline = np.full((2, 3), -1.0, np.float32)
    z = np.array([[1, 0, 1], [0, 1, 0]], bool)

    out = fill_features(inputs, z, baseline, np.array([1, 0]))

    np.testing.assert_array_equal(out, [[3, -1, 5], [-1, 1, -1]])


def test_segment_means_fill_each_segment_with_its_mean_colour() -> None:
    """segment_means (and the 'superpixel_mean' fill) paint every pixel with
    its segment's mean colour, per channel and per image."""
    inputs = images(2, size=8)
    segments = np.stack([segment(inputs[0], "grid", 4)] * 2)

    means = segment_means(inputs, segments)

    for i in range(2):
        for s in range(4):
            where = segments[i] == s
            np.testing.assert_allclose(
                means[i][where],
                np.broadcast_to(inputs[i][where].mean(0), (where.sum(), 3)),
                rtol=1e-5,
            )
    np.testing.assert_array_equal(
        resolve_fill("superpixel_mean", inputs, segments), means
    )
    np.testing.assert_array_equal(resolve_fill(0.5, inputs, segments), 0.5)


def test_to_pixels_spreads_segment_values_over_channels() -> None:
    """to_pixels puts value/C on each channel of a segment's pixels, so the
    channel sum is the segment's value."""
    segments = np.stack([segment(np.zeros((4, 4, 3)), "grid", 4)])
    values = np.array([[1.0, 2.0, 3.0, 4.0]])

    pixels = to_pixels(values, segments, 3)

    assert pixels.shape == (1, 4, 4, 3)
    np.testing.assert_allclose(pixels.sum(-1)[0], values[0][segments[0]])
    np.testing.assert_array_equal(count_segments(segments), [4])


def test_segment_masks_mark_the_kept_pixels_of_each_row() -> None:
    """segment_masks gives each row's kept pixels, z[m, segments[rows[m]]],
    for one image or a mix of images with different segment counts."""
    inputs = images(2, size=8)
    segments = np.stack([segment(inputs[0], "grid", 4), segment(inputs[1], "grid", 2)])
    z = np.array([[1, 0, 0, 1], [0, 1, 1, 1], [1, 1, 0, 0], [0, 1, 0, 0]], bool)
    for rows in (np.array([0, 1, 0, 1]), np.array([1, 1, 1, 1])):
        keep = segment_masks(segments, z, rows)
        assert keep.shape == (4, 8, 8) and keep.dtype == bool
        for m, i in enumerate(rows):
            np.testing.assert_array_equal(keep[m], z[m][segments[i]])
