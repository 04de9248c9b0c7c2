"""Gradient-based attribution methods on real Keras models.

Covers gradient × input, integrated gradients, SmoothGrad (and its variants),
Grad-CAM, Grad-CAM++ and expected gradients: their defining properties,
incremental sampling, cancellation and parameter checking.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import pytest
from factories import images, small_cnn, small_encoder, tabular_mlp

import ssxwidgets as ssx
from ssxwidgets.targets import EmbeddingSimilarity

SIZE = 32


# -- local factories ----------------------------------------------------------


def _with_biases(model: Any, seed: int = 1, scale: float = 0.05) -> Any:
    """`model` with random biases: no longer positively homogeneous, so the
    output at a black image is not trivially zero."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        bias = getattr(layer, "bias", None)
        if bias is not None:
            bias.assign(rng.normal(0.0, scale, bias.shape).astype(np.float32))
    return model


def _float64_copy(model: Any) -> Any:
    """The same network computing in float64, for finite differences."""

    def clone(layer: Any) -> Any:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float64"})

    inputs = keras.Input(model.input_shape[1:], dtype="float64")
    copy = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


class _Mask(keras.layers.Layer):
    """Multiplies the input by a fixed `(H, W, 1)` mask."""

    def __init__(self, mask: np.ndarray, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask = keras.ops.convert_to_tensor(mask, "float32")

    def call(self, inputs: Any) -> Any:
        return inputs * self.mask


def _masked_encoder(mask: np.ndarray) -> Any:
    """An encoder that sees (almost) only where `mask` is 1."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = _Mask(mask[..., None])(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(32, name="embedding")(x)
    return _with_biases(keras.Model(inputs, outputs, name="masked_encoder"))


def _colour_model() -> Any:
    """Class 0 scores the mean redness, class 1 the mean blueness, through one
    conv layer whose filter 0 sees only red and filter 1 only blue."""
    inputs = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(
        2, 3, padding="same", activation="relu", use_bias=False, name="colour_conv"
    )
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(2, use_bias=False, name="logits")
    outputs = head(x)
    model = keras.Model(inputs, outputs, name="colour_classifier")
    kernel = np.zeros((3, 3, 3, 2), np.float32)
    kernel[:, :, 0, 0] = 1.0 / 9.0
    kernel[:, :, 2, 1] = 1.0 / 9.0
    conv.kernel.assign(kernel)
    head.kernel.assign(np.eye(2, dtype=np.float32))
    return model


# red square in the top-right quadrant, on a blue-green background
SQUARE = (slice(4, 12), slice(20, 28))


def _red_square_image() -> np.ndarray:
    rng = np.random.default_rng(5)
    image = np.zeros((1, SIZE, SIZE, 3), np.float32)
    image[..., 1] = rng.uniform(0.2, 0.6, (SIZE, SIZE))
    image[..., 2] = rng.uniform(0.2, 0.6, (SIZE, SIZE))
    image[0, SQUARE[0], SQUARE[1]] = (1.0, 0.0, 0.0)
    return image


@pytest.fixture(scope="module")
def cnn() -> Any:
    return _with_biases(small_cnn(SIZE))


@pytest.fixture(scope="module")
def encoder() -> Any:
    return _with_biases(small_encoder(SIZE), seed=2)


@pytest.fixture(scope="module")
def mlp() -> Any:
    return _with_biases(tabular_mlp(), seed=4, scale=0.3)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(24, 8)).astype(np.float32)


def _widest_gap_class(model: Any, x: np.ndarray) -> int:
    """The class whose score differs most between `x` and a black image."""
    gap = np.asarray(model(x)) - np.asarray(model(np.zeros_like(x)))
    return int(np.abs(gap).min(axis=0).argmax())


# -- integrated gradients -------------------------------------------------------


@pytest.mark.parametrize("rule", ["trapezoid", "riemann_middle"])
def test_ig_completeness_class_target(cnn: Any, rule: str) -> None:
    """IG attributions of a class score sum to f(x) − f(baseline) within 1 %
    at 64 steps."""
    x = images(2, SIZE, seed=11)
    target = _widest_gap_class(cnn, x)
    exp = ssx.attribute(
        cnn,
        x,
        "integrated_gradients",
        target=target,
        n_steps=64,
        baseline=0.0,
        rule=rule,
    )

    gap = (np.asarray(cnn(x)) - np.asarray(cnn(np.zeros_like(x))))[:, target]
    assert np.abs(gap).min() > 0.05, "inputs chosen so the gap is not tiny"
    total = exp.values.reshape(2, -1).sum(axis=1)
    assert np.all(np.abs(total - gap) <= 0.01 * np.abs(gap))
    np.testing.assert_allclose(exp.outputs - exp.base_values, gap, rtol=1e-4)
    assert np.all(exp.extras["completeness_relative_delta"] < 0.01)


def test_ig_completeness_label_free(encoder: Any) -> None:
    """IG attributions of the label-free EmbeddingSimilarity target sum to
    e(x)·e(x) − e(x)·e(baseline) within 1 % at 64 steps."""
    x = images(2, SIZE, seed=12)
    exp = ssx.attribute(
        encoder, x, "integrated_gradients", target=EmbeddingSimilarity(), n_steps=64
    )

    own = np.asarray(encoder(x), np.float64)
    at_base = np.asarray(encoder(np.zeros_like(x)), np.float64)
    gap = (own * own).sum(axis=1) - (own * at_base).sum(axis=1)
    assert np.abs(gap).min() > 0.05
    total = exp.values.reshape(2, -1).sum(axis=1)
    assert np.all(np.abs(total - gap) <= 0.01 * np.abs(gap))


def test_ig_partials_refine_towards_the_result(cnn: Any) -> None:
    """Streamed IG partials have rising progress, and the last one is the
    same as the finished result."""
    adapter = ssx.ModelAdapter(cnn, batch_size=16)
    x = images(1, SIZE, seed=13)
    parts = list(
        ssx.stream(
            adapter, x, "integrated_gradients", target=0, n_steps=63, baseline="blur"
        )
    )
    progress = [p.progress for p in parts]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len(parts) >= 2
    done = ssx.attribute(
        cnn, x, "integrated_gradients", target=0, n_steps=63, baseline="blur"
    )
    np.testing.assert_allclose(parts[-1].values, done.values, rtol=1e-4, atol=1e-7)


# -- gradients against finite differences ---------------------------------------


def _central_differences(
    model64: Any,
    x: np.ndarray,
    target: int,
    coordinates: list[tuple[int, ...]],
    eps: float = 1e-5,
) -> np.ndarray:
    estimates = []
    for coordinate in coordinates:
        step = np.zeros_like(x, np.float64)
        step[(0, *coordinate)] = eps
        up = np.asarray(model64(x.astype(np.float64) + step))[0, target]
        down = np.asarray(model64(x.astype(np.float64) - step))[0, target]
        estimates.append((up - down) / (2 * eps))
    return np.array(estimates)


@pytest.fixture
def full_float32() -> Iterator[None]:
    """Float32 matrix products and convolutions even on GPUs that would use
    TensorFloat-32 (10-bit mantissas) by default."""
    import tensorflow as tf

    was = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(was)


@pytest.mark.parametrize("kind", ["tabular", "image"])
@pytest.mark.usefixtures("full_float32")
def test_gradients_match_finite_differences(
    kind: str, mlp: Any, cnn: Any, rows: np.ndarray
) -> None:
    """Gradient × input divided by the input equals the float64 central
    finite-difference derivative of the class score, coordinate by
    coordinate."""
    rng = np.random.default_rng(21)
    if kind == "tabular":
        model, x = mlp, rows[:1]
        coordinates = [(int(i),) for i in rng.choice(8, 5, replace=False)]
    else:
        model, x = cnn, images(1, SIZE, seed=14) + 0.1
        coordinates = [
            tuple(int(c) for c in rng.integers(0, (SIZE, SIZE, 3))) for _ in range(6)
        ]
    exp = ssx.attribute(model, x, "gradient_x_input", target=1)

    gradient = exp.values / x
    analytic = np.array([gradient[(0, *c)] for c in coordinates])
    numeric = _central_differences(_float64_copy(model), x, 1, coordinates)
    scale = np.abs(numeric).max()
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-4 * scale)


# -- Grad-CAM -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus"])
def test_cam_lights_the_region_the_class_responds_to(method: str) -> None:
    """On a model whose class 0 is the mean redness seen by a red-only filter,
    the CAM peaks inside the red square and is far stronger there; class 1
    (blueness) lights the background instead."""
    model = _colour_model()
    image = _red_square_image()
    inside = np.zeros((SIZE, SIZE), bool)
    inside[SQUARE] = True

    red = ssx.attribute(model, image, method, target=0).map[0]
    peak = np.unravel_index(red.argmax(), red.shape)
    assert inside[peak]
    assert red[inside].mean() > 20 * max(red[~inside].mean(), 1e-9)

    blue = ssx.attribute(model, image, method, target=1, layer="colour_conv").map[0]
    assert blue[~inside].mean() > 3 * blue[inside].mean()


def test_cam_values_spread_over_channels(cnn: Any) -> None:
    """Grad-CAM values are (N, H, W, C) with the map split evenly over the
    channels, so `map` is the map itself and never negative with relu."""
    exp = ssx.attribute(cnn, images(2, SIZE), "gradcam", target=1)
    assert exp.values.shape == (2, SIZE, SIZE, 3)
    np.testing.assert_allclose(exp.values[..., 0], exp.values[..., 2])
    np.testing.assert_allclose(exp.map, 3 * exp.values[..., 0], rtol=1e-6)
    assert exp.map.min() >= 0.0


# -- label-free attribution ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("gradient_x_input", {}),
        ("integrated_gradients", {"n_steps": 16, "baseline": "blur"}),
        ("smoothgrad", {"n_samples": 16}),
        ("expected_gradients", {"n_samples": 32}),
    ],
)
def test_label_free_attribution_stays_where_the_encoder_looks(
    method: str, params: dict[str, Any]
) -> None:
    """With an encoder that scales everything outside one quadrant by 0.01,
    at least 90 % of the |attribution| of EmbeddingSimilarity lies inside
    that quadrant."""
    mask = np.full((SIZE, SIZE), 0.01, np.float32)
    mask[:16, :16] = 1.0
    model = _masked_encoder(mask)
    exp = ssx.attribute(
        model, images(2, SIZE, seed=15), method, target=EmbeddingSimilarity(), **params
    )

    mass = np.abs(exp.values).sum(axis=-1)
    share = mass[:, :16, :16].sum(axis=(1, 2)) / mass.sum(axis=(1, 2))
    assert np.all(share >= 0.9), share


# -- SmoothGrad ------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["mean", "squared", "variance"])
def test_smoothgrad_is_deterministic_per_seed(cnn: Any, variant: str) -> None:
    """Two runs with one seed (no shared cache) give the same values; another
    seed gives different ones."""
    x = images(1, SIZE, seed=16)

    def once(seed: int) -> np.ndarray:
        adapter = ssx.ModelAdapter(cnn)
        return ssx.attribute(
            adapter, x, "smoothgrad", target=2, seed=seed, n_samples=20, variant=variant
        ).values

    first, again, other = once(3), once(3), once(4)
    # not bit-equal: a GPU's gradient kernels may sum in a varying order
    np.testing.assert_allclose(first, again, rtol=1e-5, atol=1e-7)
    assert np.abs(first - other).max() > 1e-3 * np.abs(first).max()


def test_smoothgrad_estimates_settle(cnn: Any) -> None:
    """The change the last block makes shrinks as samples accumulate, and the
    estimate at n is closer to the 4n reference than an early partial is."""
    adapter = ssx.ModelAdapter(cnn, batch_size=16)
    x = images(1, SIZE, seed=17)
    parts = list(ssx.stream(adapter, x, "smoothgrad", target=2, n_samples=64))
    reference = ssx.attribute(adapter, x, "smoothgrad", target=2, n_samples=256).values

    changes = [p.convergence for p in parts if p.convergence is not None]
    assert len(changes) == 3
    assert changes[-1] < changes[0]

    def error(values: np.ndarray) -> float:
        return float(np.linalg.norm(values - reference) / np.linalg.norm(reference))

    assert error(parts[-1].values) < error(parts[0].values)
    assert error(parts[-1].values) < 0.5


def _quadratic(weights: np.ndarray) -> Any:
    """A Keras model whose one output is ``Σ weights · x²``: its gradient
    ``2 · weights · x`` is linear in ``x``."""
    inputs = keras.Input(weights.shape)
    squares = keras.layers.Multiply()([inputs, inputs])
    dense = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(squares)))
    dense.set_weights([weights.reshape(-1, 1).astype(np.float32)])
    return model


def test_smoothgrad_noise_has_the_asked_scale_and_cancels_in_pairs() -> None:
    """On ``f = Σ a x²`` (gradient ``2a(x + σε)``): the mean variant is
    exactly ``2ax``, because the noise comes in antithetic pairs that cancel;
    VarGrad averages to ``4a²σ²`` with ``σ = noise · (max − min)``, so the
    noise has the scale asked for; and f(x) comes from binding "top", so the
    run costs one evaluation per sample."""
    rng = np.random.default_rng(5)
    a = rng.uniform(0.5, 1.5, (SIZE, SIZE, 3)).astype(np.float32)
    model = _quadratic(a)
    x = images(1, SIZE, seed=18)
    sigma = 0.2 * float(x.max() - x.min())

    mean = ssx.attribute(model, x, "smoothgrad", target="top", noise=0.2, n_samples=32)
    np.testing.assert_allclose(mean.values[0], 2 * a * x[0], rtol=1e-4, atol=1e-5)
    assert mean.n_evaluations == 32

    variance = ssx.attribute(
        model, x, "smoothgrad", noise=0.2, n_samples=400, variant="variance"
    )
    ratio = variance.values[0] / (4 * a**2 * sigma**2)
    assert abs(float(ratio.mean()) - 1.0) < 0.03, ratio.mean()


INCREMENTAL = [
    ("smoothgrad", {"variant": "variance"}),
    ("expected_gradients", {"background": "blur"}),
]


@pytest.mark.parametrize(("method", "params"), INCREMENTAL)
def test_raising_n_samples_continues(
    cnn: Any, method: str, params: dict[str, Any]
) -> None:
    """Raising n_samples from 50 to 100 on the same problem costs at most 55
    new evaluations and gives what a fresh run with 100 samples gives."""
    adapter = ssx.ModelAdapter(cnn)
    x = images(1, SIZE, seed=18)
    ssx.attribute(adapter, x, method, target=1, n_samples=50, **params)
    before = adapter.n_evaluations
    raised = ssx.attribute(adapter, x, method, target=1, n_samples=100, **params)

    assert adapter.n_evaluations - before <= 55
    assert raised.n_evaluations <= 55
    fresh = ssx.attribute(
        ssx.ModelAdapter(cnn), x, method, target=1, n_samples=100, **params
    )
    np.testing.assert_allclose(
        raised.values, fresh.values, rtol=1e-4, atol=1e-6 * np.abs(fresh.values).max()
    )


@pytest.mark.parametrize(("method", "params"), INCREMENTAL)
def test_lowering_n_samples_reuses_a_prefix(
    cnn: Any, method: str, params: dict[str, Any]
) -> None:
    """Lowering n_samples from 100 to 30 costs at most one block of new
    evaluations and equals a fresh run with 30 samples."""
    adapter = ssx.ModelAdapter(cnn)
    x = images(1, SIZE, seed=19)
    ssx.attribute(adapter, x, method, target=1, n_samples=100, **params)
    lowered = ssx.attribute(adapter, x, method, target=1, n_samples=30, **params)

    assert lowered.n_evaluations <= 16
    fresh = ssx.attribute(
        ssx.ModelAdapter(cnn), x, method, target=1, n_samples=30, **params
    )
    np.testing.assert_allclose(
        lowered.values, fresh.values, rtol=1e-5, atol=1e-7 * np.abs(fresh.values).max()
    )


# -- expected gradients ---------------------------------------------------------


def test_expected_gradients_complete_in_expectation(mlp: Any, rows: np.ndarray) -> None:
    """With many samples, expected-gradient attributions sum to f(x) minus
    the mean of f over the background (within 10 % of that gap), and the
    estimate reports how settled it is."""
    x, background = rows[:2], rows[4:]
    exp = ssx.attribute(
        mlp, x, "expected_gradients", target=0, background=background, n_samples=3000
    )

    expected = np.asarray(mlp(background))[:, 0].mean()
    np.testing.assert_allclose(exp.base_values, expected, rtol=1e-5)
    gap = np.asarray(mlp(x))[:, 0] - expected
    assert np.abs(gap).min() > 0.1
    total = exp.values.sum(axis=1)
    assert np.all(np.abs(total - gap) <= 0.1 * np.abs(gap))
    assert exp.convergence is not None and exp.convergence < 0.05


def test_expected_gradients_base_values_average_the_background(encoder: Any) -> None:
    """For a label-free target, whose weights differ per input, base_values is
    each input's target averaged over every background reference."""
    x, background = images(3, SIZE, seed=20), images(5, SIZE, seed=21)
    exp = ssx.attribute(
        encoder,
        x,
        "expected_gradients",
        target=EmbeddingSimilarity(),
        background=background,
        n_samples=16,
    )

    own, refs = np.asarray(encoder(x)), np.asarray(encoder(background))
    np.testing.assert_allclose(exp.base_values, (own @ refs.T).mean(axis=1), rtol=1e-5)


# -- cancellation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("integrated_gradients", {"n_steps": 64}),
        ("smoothgrad", {"n_samples": 64}),
        ("expected_gradients", {"n_samples": 64, "background": "blur"}),
    ],
)
def test_cancel_stops_within_one_batch(
    cnn: Any, method: str, params: dict[str, Any]
) -> None:
    """A cancel flag raised after the first partial ends the stream quietly
    with at most one more batch evaluated."""
    adapter = ssx.ModelAdapter(cnn, batch_size=8)
    flag = {"cancelled": False}
    parts = []
    after_first = 0
    for part in ssx.stream(
        adapter,
        images(2, SIZE),
        method,
        target=0,
        cancel=lambda: flag["cancelled"],
        **params,
    ):
        parts.append(part)
        if not flag["cancelled"]:
            flag["cancelled"] = True
            after_first = adapter.n_evaluations

    assert len(parts) == 1 and parts[0].progress < 1.0
    assert adapter.n_evaluations - after_first <= adapter.batch_size


# -- bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "error", "match"),
    [
        ("integrated_gradients", {"n_steps": 0}, ValueError, r"n_steps.*got 0"),
        ("integrated_gradients", {"n_steps": -5}, ValueError, r"n_steps.*got -5"),
        ("integrated_gradients", {"n_steps": 10**9}, ValueError, r"n_steps.*got"),
        ("integrated_gradients", {"n_steps": 2.5}, TypeError, r"n_steps.*got 2.5"),
        (
            "integrated_gradients",
            {"rule": "simpson"},
            ValueError,
            r"trapezoid.*got 'simpson'",
        ),
        (
            "integrated_gradients",
            {"baseline": np.zeros((5, 5, 3))},
            ValueError,
            r"\(32, 32, 3\).*got .*\(5, 5, 3\)",
        ),
        ("integrated_gradients", {"baseline": object()}, TypeError, r"got object"),
        ("integrated_gradients", {"baseline": "sepia"}, ValueError, r"got 'sepia'"),
        ("smoothgrad", {"variant": "median"}, ValueError, r"variance.*got 'median'"),
        ("smoothgrad", {"noise": 3.0}, ValueError, r"noise.*got 3.0"),
        ("smoothgrad", {"n_samples": 0}, ValueError, r"n_samples.*got 0"),
        (
            "expected_gradients",
            {"background": np.zeros((4, 16, 16, 3))},
            ValueError,
            r"\(M, 32, 32, 3\).*got \(4, 16, 16, 3\)",
        ),
        ("expected_gradients", {"n_samples": 10**8}, ValueError, r"n_samples"),
        ("gradcam", {"layer": "nope"}, ValueError, r"'nope'.*last_conv"),
        ("gradcam", {"layer": "logits"}, ValueError, r"spatial.*'logits'"),
        ("gradcam_plus_plus", {"layer": 3}, TypeError, r"layer.*got 3"),
    ],
)
def test_bad_parameters_are_refused_before_any_evaluation(
    cnn: Any, method: str, params: dict[str, Any], error: type, match: str
) -> None:
    """A bad parameter raises an error saying what was expected and what
    arrived, before the model is evaluated once."""
    adapter = ssx.ModelAdapter(cnn)
    with pytest.raises(error, match=match):
        ssx.attribute(adapter, images(1, SIZE), method, target=0, **params)
    assert adapter.n_evaluations == 0


@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus"])
def test_cam_refuses_tables(mlp: Any, rows: np.ndarray, method: str) -> None:
    """Grad-CAM on tabular rows raises a ValueError naming the image shape it
    expects and the shape it got."""
    with pytest.raises(ValueError, match=r"image.*got .*\(2, 8\)"):
        ssx.attribute(mlp, rows[:2], method, target=0)


def test_expected_gradients_need_a_background_for_tables(
    mlp: Any, rows: np.ndarray
) -> None:
    """Expected gradients on tables without a background raise a ValueError
    saying which shape of reference rows is wanted."""
    with pytest.raises(ValueError, match=r"background.*\(M, 8\).*got None"):
        ssx.attribute(mlp, rows[:2], "expected_gradients", target=0)


def test_plain_callable_cannot_give_integrated_gradients() -> None:
    """A plain numpy callable asked for integrated gradients raises a
    TypeError pointing to the perturbation methods."""

    def model(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1)[:, :3] * 2.0

    adapter = ssx.ModelAdapter(model, input_shape=(8,))
    with pytest.raises(TypeError, match=r"gradients.*occlusion"):
        ssx.attribute(
            adapter, np.ones((2, 8), np.float32), "integrated_gradients", target=0
        )
    assert adapter.n_evaluations == 0
