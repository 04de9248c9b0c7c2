"""Occlusion and RISE (`ssxwidgets.methods.occlusion`, `.rise`) on real Keras
models."""

from __future__ import annotations

import numpy as np
import pytest
from factories import images, small_cnn

import ssxwidgets as ssx
from ssxwidgets.api import prepare
from ssxwidgets.methods import get_method
from ssxwidgets.methods.rise import MaskMaker

SIZE = 32
PATCH = (slice(8, 16), slice(20, 28))


def _linear(weights: np.ndarray):
    """A Keras model whose one output is ``Σ weights · x`` over the flattened
    input (a dense layer with fixed weights)."""
    import keras

    inputs = keras.Input(weights.shape)
    dense = keras.layers.Dense(1, use_bias=False, name="logits")
    flat = keras.layers.Flatten()(inputs) if weights.ndim > 1 else inputs
    model = keras.Model(inputs, dense(flat))
    dense.set_weights([weights.reshape(-1, 1).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def patch_model():
    """Responds to the mean of one 8×8 patch and to nothing else."""
    weights = np.zeros((SIZE, SIZE, 3))
    weights[PATCH] = 1.0 / weights[PATCH].size
    return _linear(weights)


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(SIZE)


def _inside_and_outside(heatmap: np.ndarray) -> tuple[float, float]:
    inside = np.zeros(heatmap.shape, bool)
    inside[PATCH] = True
    return float(heatmap[inside].mean()), float(heatmap[~inside].mean())


# -- occlusion ------------------------------------------------------------------


def test_occlusion_finds_the_planted_patch(patch_model) -> None:
    """On a model that sees only one patch, every image's occlusion map peaks
    inside the patch and is at least three times larger there than outside."""
    exp = ssx.attribute(patch_model, images(3, SIZE), "occlusion", target=0)

    for heatmap in exp.map:
        row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
        assert 8 <= row < 16 and 20 <= col < 28
        inside, outside = _inside_and_outside(heatmap)
        assert inside > 3 * abs(outside)


def test_one_pixel_occlusion_of_a_linear_model_is_exact() -> None:
    """With a 1×1 window and stride 1, occlusion of f(x) = w·x with baseline b
    is Σ_c w·(x − b) at each pixel, and outputs / base_values are f(x), f(b)."""
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(8, 8, 3))
    x = images(2, 8)

    exp = ssx.attribute(
        _linear(weights), x, "occlusion", target=0, window=1, stride=1, baseline=0.25
    )

    want = (weights * (x - 0.25)).sum(-1)
    np.testing.assert_allclose(exp.map, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(exp.outputs, (weights * x).sum((1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(exp.base_values, 0.25 * weights.sum(), rtol=1e-5)


def test_occlusion_of_a_table_drops_one_feature_at_a_time() -> None:
    """On tables, occlusion of f(x) = w·x gives w_f · (x_f − b_f) per feature."""
    weights = np.array([1.0, -2.0, 0.5, 3.0])
    x = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 1.0, 2.0]], np.float32)
    baseline = np.array([0.5, 0.0, 1.0, -1.0], np.float32)

    exp = ssx.attribute(_linear(weights), x, "occlusion", target=0, baseline=baseline)

    np.testing.assert_allclose(exp.values, weights * (x - baseline), rtol=1e-5)


def test_occlusion_window_as_a_fraction_covers_the_image(patch_model) -> None:
    """A window given as a fraction of the image side works, and every pixel
    gets a value (windows flush with the far edge are added)."""
    x = images(1, SIZE)

    exp = ssx.attribute(patch_model, x, "occlusion", target=0, window=0.3, stride=7)
    ones = ssx.attribute(
        _linear(np.ones((SIZE, SIZE, 3))),
        x,
        "occlusion",
        target=0,
        window=0.3,
        stride=7,
    )

    assert exp.map.shape == (1, SIZE, SIZE)
    assert (ones.map > 0).all()


def test_occlusion_streams_and_cancels_within_one_batch(cnn) -> None:
    """Occlusion yields partials with rising progress; cancelling after the
    first ends the stream with at most one batch more evaluated."""
    x = images(1, SIZE)
    partials = list(ssx.stream(cnn, x, "occlusion", target=0, window=4, stride=1))
    progress = [p.progress for p in partials]
    assert len(progress) >= 2 and progress == sorted(progress)
    assert progress[-1] == 1.0

    adapter = ssx.ModelAdapter(cnn)
    cancelled: list[bool] = []
    stream = ssx.stream(
        adapter,
        x,
        "occlusion",
        target=0,
        window=4,
        stride=1,
        cancel=lambda: bool(cancelled),
    )
    next(stream)
    before = adapter.n_evaluations
    cancelled.append(True)
    assert list(stream) == []
    assert adapter.n_evaluations - before <= adapter.batch_size


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"window": 0}, r"window must be in \[1, 32\]; got 0"),
        ({"window": 33}, r"window must be in \[1, 32\]; got 33"),
        ({"window": 1.5}, r"fraction .* \(0, 1\]; got 1.5"),
        ({"stride": 0}, r"stride must be in \[1, 32\]; got 0"),
        ({"baseline": "sepia"}, "baseline name must be one of.*got 'sepia'"),
    ],
)
def test_occlusion_bad_parameters_raise_before_evaluating(
    cnn, params: dict, pattern: str
) -> None:
    """Bad occlusion parameters raise a ValueError naming what was expected
    and what arrived, before any evaluation."""
    adapter = ssx.ModelAdapter(cnn)
    with pytest.raises(ValueError, match=pattern):
        ssx.attribute(adapter, images(1, SIZE), "occlusion", target=0, **params)
    assert adapter.n_evaluations == 0


# -- RISE -------------------------------------------------------------------------


def test_rise_finds_the_planted_patch(patch_model) -> None:
    """On a model that sees only one patch, every image's RISE map peaks
    inside the patch and is higher there than outside on average, with
    outputs f(x) and base_values f(baseline)."""
    x = images(3, SIZE)

    exp = ssx.attribute(patch_model, x, "rise", target=0, n_samples=2000)

    for heatmap in exp.map:
        row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
        assert 8 <= row < 16 and 20 <= col < 28
        inside, outside = _inside_and_outside(heatmap)
        assert inside > outside
    np.testing.assert_allclose(
        exp.outputs, x[:, 8:16, 20:28].mean((1, 2, 3)), rtol=1e-5
    )
    np.testing.assert_allclose(exp.base_values, 0.0, atol=1e-7)


def test_rise_settles_as_samples_grow(cnn) -> None:
    """RISE partials stream with rising progress, and the relative change
    between the last two is under a quarter of that between the first two."""
    partials = list(ssx.stream(cnn, images(1, SIZE), "rise", target=0, n_samples=4000))

    changes = [p.convergence for p in partials[1:]]
    assert len(changes) >= 4 and all(c is not None for c in changes)
    assert changes[-1] < 0.25 * changes[0]
    assert [p.progress for p in partials][-1] == 1.0


def test_rise_one_seed_gives_one_result(cnn) -> None:
    """Two fresh RISE runs with one seed agree exactly; another seed differs."""
    x = images(1, SIZE, seed=2)

    runs = [
        ssx.attribute(
            ssx.ModelAdapter(cnn), x, "rise", target=1, seed=seed, n_samples=300
        )
        for seed in (3, 3, 4)
    ]

    np.testing.assert_array_equal(runs[0].values, runs[1].values)
    assert not np.array_equal(runs[0].values, runs[2].values)


def test_rise_is_incremental_and_prefix_stable(cnn) -> None:
    """Raising n_samples 1,000 → 2,000 costs at most 1,050 evaluations;
    lowering to 1,000 costs none and equals a fresh run at 1,000."""
    adapter = ssx.ModelAdapter(cnn)
    x = images(1, SIZE, seed=3)

    ssx.attribute(adapter, x, "rise", target=0, n_samples=1000)
    raised = ssx.attribute(adapter, x, "rise", target=0, n_samples=2000)
    lowered = ssx.attribute(adapter, x, "rise", target=0, n_samples=1000)
    fresh = ssx.attribute(ssx.ModelAdapter(cnn), x, "rise", target=0, n_samples=1000)

    assert raised.n_evaluations <= 1050
    assert lowered.n_evaluations == 0
    np.testing.assert_allclose(lowered.values, fresh.values, rtol=1e-4, atol=1e-7)


def test_rise_keeps_no_masks(cnn) -> None:
    """What RISE keeps between runs grows by well under one mask per sample:
    grids and scores, never the (H, W) masks themselves."""
    request = prepare(cnn, images(1, SIZE), "rise", target=0, n_samples=3000)
    _, run = get_method("rise")

    list(run(request))

    kept = sum(_nbytes(value) for value in request.cache.values())
    one_mask = SIZE * SIZE * 4
    assert kept < 3000 * one_mask / 10


@pytest.mark.parametrize(("height", "width", "cell"), [(32, 32, 8), (50, 37, 5)])
def test_rise_sums_in_grid_space_equal_the_masks_sums(height, width, cell) -> None:
    """Weighted sums kept by shift in grid space and rendered once equal
    ``Σ_m w_m M_m`` over the masks themselves (a mask is linear in its grid
    for a fixed shift), antithetic pairs and odd sizes included."""
    masks = MaskMaker(height, width, cell, seed=3, antithetic=True)
    rng = np.random.default_rng(0)
    z = rng.random((40, cell * cell)) < 0.5
    index = np.arange(40)
    weights = rng.normal(size=(3, 40))

    want = np.einsum("qm,mhw->qhw", weights, masks.make(z, index).astype(np.float64))
    got = masks.render(masks.grid_sums(z, index, weights))

    np.testing.assert_allclose(got, want, atol=1e-5)


def _nbytes(value: object) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return 0


def test_rise_cancel_stops_within_one_batch(cnn) -> None:
    """Cancelling RISE after its first partial ends the stream with at most
    one batch more evaluated."""
    adapter = ssx.ModelAdapter(cnn)
    cancelled: list[bool] = []
    stream = ssx.stream(
        adapter,
        images(1, SIZE),
        "rise",
        target=0,
        n_samples=5000,
        cancel=lambda: bool(cancelled),
    )

    first = next(stream)
    before = adapter.n_evaluations
    cancelled.append(True)

    assert first.progress < 1 and list(stream) == []
    assert adapter.n_evaluations - before <= adapter.batch_size


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"n_samples": 0}, r"n_samples must be in \[1, .*got 0"),
        ({"n_samples": 10**9}, "n_samples must be in .*got 1000000000"),
        ({"cell": 0}, r"cell must be in \[1, 32\]; got 0"),
        ({"cell": 64}, r"cell must be in \[1, 32\]; got 64"),
        ({"p": 1.0}, r"p must be in \(0, 1\), exclusive; got 1.0"),
        ({"p": -0.5}, r"p must be in \[0.0, 1.0\]; got -0.5"),
    ],
)
def test_rise_bad_parameters_raise_before_evaluating(
    cnn, params: dict, pattern: str
) -> None:
    """Bad RISE parameters raise a ValueError naming what was expected and
    what arrived, before any evaluation."""
    adapter = ssx.ModelAdapter(cnn)
    with pytest.raises(ValueError, match=pattern):
        ssx.attribute(adapter, images(1, SIZE), "rise", target=0, **params)
    assert adapter.n_evaluations == 0


def test_rise_refuses_tables() -> None:
    """RISE on table rows raises a ValueError saying it applies to images."""
    with pytest.raises(ValueError, match="rise applies to image inputs"):
        ssx.attribute(_linear(np.ones(4)), np.ones((1, 4)), "rise", target=0)
