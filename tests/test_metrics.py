"""Faithfulness and sanity metrics, checked on planted ground truth."""

from __future__ import annotations

import factories
import keras
import numpy as np
import pytest

import ssxwidgets as ssx
from ssxwidgets.explanation import Explanation


def _patch_model(size: int = 16):
    """Class 0 = mean brightness of the top-left 4×4 patch, nothing else."""
    mask = np.zeros((size, size, 3), np.float32)
    mask[:4, :4] = 1.0 / 48
    inputs = keras.Input((size, size, 3))
    flat = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(1, use_bias=False)
    outputs = dense(flat)
    model = keras.Model(inputs, outputs)
    dense.set_weights([mask.reshape(-1, 1)])
    return model, mask[..., 0] > 0


def _explanation(values: np.ndarray) -> Explanation:
    n = len(values)
    return Explanation(values, "planted", "class 0", np.zeros(n), np.zeros(n))


def test_deletion_prefers_the_true_evidence():
    """Deleting the planted patch first drops the score faster (lower AUC)
    than deleting pixels in a random order; insertion is the mirror image."""
    model, patch = _patch_model()
    x = np.ones((1, 16, 16, 3), np.float32)
    truth = _explanation(np.repeat(patch[None, ..., None], 3, -1).astype(float))
    noise = _explanation(np.random.default_rng(0).random(x.shape))
    assert ssx.metrics.deletion(model, x, truth, target=0)[0] < 0.1
    assert (
        ssx.metrics.deletion(model, x, noise, target=0)[0]
        > ssx.metrics.deletion(model, x, truth, target=0)[0] + 0.3
    )
    assert (
        ssx.metrics.insertion(model, x, truth, target=0, baseline=0.0)[0]
        > ssx.metrics.insertion(model, x, noise, target=0, baseline=0.0)[0]
    )


def test_curve_ends_are_the_input_and_the_baseline():
    """A deletion curve starts at f(x) and ends at f(baseline)."""
    model, _ = _patch_model()
    x = np.full((2, 16, 16, 3), 0.5, np.float32)
    curve = ssx.metrics.deletion_curve(
        model, x, _explanation(np.ones(x.shape)), target=0, n_steps=4
    )
    assert curve.scores.shape == (2, 5)
    np.testing.assert_allclose(curve.scores[:, 0], 0.5, rtol=1e-5)
    np.testing.assert_allclose(curve.scores[:, -1], 0.0, atol=1e-6)


def test_pointing_game_counts_hits():
    """An input counts as a hit when its top pixel is inside its mask."""
    values = np.zeros((2, 4, 4, 1))
    values[0, 1, 1] = 5.0
    values[1, 3, 3] = -7.0
    masks = np.zeros((2, 4, 4), bool)
    masks[:, 1, 1] = True
    assert ssx.metrics.pointing_game(_explanation(values), masks) == 0.5
    with pytest.raises(ValueError, match=r"\(2, 4, 4\).*got \(4, 4\)"):
        ssx.metrics.pointing_game(_explanation(values), masks[0])


def test_randomization_breaks_a_faithful_map():
    """Saliency after randomising every layer no longer ranks pixels like the
    trained model's saliency."""
    model = factories.small_cnn(size=16)
    x = factories.images(2, size=16)
    results = ssx.metrics.randomization(model, x, method="saliency")
    assert list(results)[:2] == ["logits", "last_conv"] and len(results) == 3
    assert min(results.values()) < 0.5
