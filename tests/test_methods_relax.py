"""RELAX on real Keras encoders."""

from __future__ import annotations

import numpy as np
import pytest
from factories import images, small_encoder

import ssxwidgets as ssx
from ssxwidgets.targets import Direction

SIZE = 32
#: the encoder sees only this top-left square
REGION = 16
#: a target whose binding evaluates nothing, for counting evaluations
STILL = Direction(np.ones(32))
#: RELAX masks are smooth over one cell of SIZE / cell pixels
CELL_PIXELS = SIZE // 8


def region_encoder(size: int = SIZE, region: int = REGION, seed: int = 0):
    """A Keras encoder blind outside the top-left `region` square: a fixed
    multiplicative mask before its convolutions, no pooling after them (so
    the embedding's direction, not only its scale, follows the pixels)."""
    import keras

    keras.utils.set_random_seed(seed)
    window = np.zeros((1, size, size, 1), np.float32)
    window[:, :region, :region] = 1.0
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Lambda(lambda t: t * window, name="window")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(32, name="embedding")(x)
    return keras.Model(inputs, outputs, name="region_encoder")


@pytest.fixture(scope="module")
def encoder():
    return region_encoder()


@pytest.fixture(scope="module")
def x():
    return images(2, size=SIZE)


@pytest.fixture(scope="module")
def explained(encoder, x):
    return ssx.attribute(encoder, x, "relax", n_samples=1000)


def test_importance_concentrates_where_the_encoder_looks(explained):
    """On an encoder that sees only one square, the most important pixels lie
    in that square (grown by one mask cell, the masks' smoothing), and the
    square stands far above the pixels away from it."""
    inside = np.zeros((SIZE, SIZE), bool)
    inside[:REGION, :REGION] = True
    grown = np.zeros((SIZE, SIZE), bool)
    grown[: REGION + CELL_PIXELS, : REGION + CELL_PIXELS] = True
    far = ~grown
    for importance in explained.map:
        top = np.argsort(importance.ravel())[::-1][: inside.sum()]
        assert grown.ravel()[top].mean() >= 0.9
        gap = importance[inside].mean() - importance[far].mean()
        assert gap > 4.0 * importance[far].std()


def test_uncertainty_map(explained, x):
    """The uncertainty is an (N, H, W) map, finite, non-negative and not all
    zero."""
    uncertainty = explained.extras["uncertainty"]
    assert uncertainty.shape == x.shape[:3]
    assert np.isfinite(uncertainty).all()
    assert (uncertainty >= 0).all() and uncertainty.max() > 0


def test_outputs_and_base_values(explained, encoder, x):
    """Outputs are each embedding's cosine similarity to itself (1); the
    base value is the similarity at the baseline (black image)."""
    np.testing.assert_allclose(explained.outputs, 1.0, atol=1e-5)
    own = encoder.predict(x, verbose=0)
    black = encoder.predict(np.zeros_like(x), verbose=0)
    cos = (own * black).sum(1) / np.maximum(
        np.linalg.norm(own, axis=1) * np.linalg.norm(black, axis=1), 1e-12
    )
    np.testing.assert_allclose(explained.base_values, cos, atol=1e-5)


def test_deterministic_per_seed(encoder, x):
    """One seed gives the same maps on fresh adapters of different batch
    sizes; another seed gives other maps."""
    params = {"n_samples": 300}
    first = ssx.attribute(
        ssx.adapt(encoder, batch_size=32), x, "relax", seed=3, **params
    )
    second = ssx.attribute(
        ssx.adapt(encoder, batch_size=128), x, "relax", seed=3, **params
    )
    other = ssx.attribute(
        ssx.adapt(encoder, batch_size=32), x, "relax", seed=4, **params
    )
    np.testing.assert_allclose(first.values, second.values, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        first.extras["uncertainty"], second.extras["uncertainty"], rtol=1e-4, atol=1e-9
    )
    assert not np.allclose(first.values, other.values)


def test_convergence_shrinks(encoder, x):
    """The relative change between successive partials shrinks as masks
    accumulate, and progress reaches 1."""
    partials = list(
        ssx.stream(ssx.adapt(encoder, batch_size=64), x, "relax", n_samples=2000)
    )
    changes = [p.convergence for p in partials if p.convergence is not None]
    assert len(changes) >= 4
    assert changes[-1] < changes[0] / 2
    assert partials[-1].progress == 1.0


def test_lower_n_samples_reuses_a_prefix(encoder, x):
    """After 1024 masks, asking for 512 evaluates nothing and gives what a
    fresh run of 512 gives."""
    adapter = ssx.adapt(encoder, batch_size=64)
    ssx.attribute(adapter, x, "relax", target=STILL, n_samples=1024)
    before = adapter.n_evaluations
    reused = ssx.attribute(adapter, x, "relax", target=STILL, n_samples=512)
    assert adapter.n_evaluations == before and reused.n_evaluations == 0
    fresh = ssx.attribute(ssx.adapt(encoder, batch_size=64), x, "relax", n_samples=512)
    np.testing.assert_allclose(reused.values, fresh.values, rtol=1e-6, atol=1e-9)


def test_ignores_the_request_target(x):
    """RELAX explains the embedding's similarity to itself whatever target
    the request carries."""
    encoder = small_encoder(size=SIZE, dim=16)
    plain = ssx.attribute(encoder, x, "relax", n_samples=128)
    direction = Direction(np.linspace(-1.0, 1.0, 16))
    aimed = ssx.attribute(encoder, x, "relax", target=direction, n_samples=128)
    np.testing.assert_allclose(plain.values, aimed.values, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("name", "value"), [("p", 1.0), ("cell", 0), ("n_samples", 0)])
def test_bad_parameters_raise_before_evaluating(encoder, x, name, value):
    """A parameter out of range raises a ValueError naming it, before any
    evaluation."""
    adapter = ssx.adapt(encoder, batch_size=16)
    before = adapter.n_evaluations
    with pytest.raises(ValueError, match=name):
        ssx.attribute(adapter, x, "relax", target=STILL, **{name: value})
    assert adapter.n_evaluations == before
