"""Kernel SHAP and Partition SHAP through shap, on real Keras models."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from factories import images, small_cnn, tabular_mlp
from scipy.ndimage import uniform_filter

import ssxwidgets as ssx
from ssxwidgets.targets import ClassTarget

SIZE = 16
RTOL = 1e-5


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(size=SIZE)


@pytest.fixture(scope="module")
def x():
    return images(2, size=SIZE)


@pytest.fixture(scope="module")
def mlp():
    return tabular_mlp(n_features=6)


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(1)
    return rng.normal(size=(24, 6)).astype(np.float32)


def linear_model(weights: np.ndarray, bias: float):
    """A Keras model whose class-0 logit is ``weights · x + bias``."""
    import keras

    inputs = keras.Input((len(weights),))
    layer = keras.layers.Dense(2, name="logits")
    outputs = layer(inputs)
    kernel = np.stack([weights, -weights], axis=1).astype(np.float32)
    layer.set_weights([kernel, np.array([bias, -bias], np.float32)])
    return keras.Model(inputs, outputs, name="linear")


def own_scores(model, inputs, target=1):
    """The target's scores of `inputs`, evaluated by a fresh adapter."""
    adapter = ssx.adapt(model, batch_size=8)
    bound = ClassTarget(target).bind(adapter, inputs)
    return adapter.evaluate(np.asarray(inputs, np.float32), bound)


def assert_additive(total, outputs):
    scale = np.maximum(1.0, np.abs(outputs))
    assert np.all(np.abs(total - outputs) <= RTOL * scale), (total, outputs)


def test_partition_images_additive(cnn, x):
    """Partition SHAP on images: the values of each image plus its base value
    give the model's output, which matches our own evaluation."""
    exp = ssx.attribute(cnn, x, "partition_shap", target=1, max_evals=200)
    assert exp.values.shape == x.shape
    total = exp.values.reshape(len(x), -1).astype(np.float64).sum(1) + exp.base_values
    assert_additive(total, exp.outputs)
    assert_additive(exp.outputs, own_scores(cnn, x))


def test_partition_images_base_value_is_fully_masked_input(cnn, x):
    """The base value is the model at the fully masked image: the constant
    fill, or the image blurred over a box a quarter of its side."""
    exp = ssx.attribute(cnn, x, "partition_shap", target=1, max_evals=50, masker=0.25)
    assert_additive(exp.base_values, own_scores(cnn, np.full_like(x, 0.25)))
    exp = ssx.attribute(cnn, x, "partition_shap", target=1, max_evals=50)
    k = SIZE // 4
    blurred = uniform_filter(x.astype(np.float64), size=(1, k, k, 1), mode="mirror")
    assert_additive(exp.base_values, own_scores(cnn, blurred))


def test_partition_tables_additive_over_background(mlp, table):
    """Partition SHAP on tables: values plus base sum to the output, and the
    base value is the model's mean over the background."""
    rows = table[:3]
    exp = ssx.attribute(mlp, rows, "partition_shap", target=0, background=table)
    assert exp.values.shape == rows.shape
    assert_additive(exp.values.astype(np.float64).sum(1) + exp.base_values, exp.outputs)
    assert_additive(exp.outputs, own_scores(mlp, rows, 0))
    mean = own_scores(mlp, table, 0).astype(np.float64).mean()
    assert_additive(exp.base_values, np.full(3, mean))


def test_partition_tables_one_background_row(mlp, table):
    """A single background row (no feature correlations to cluster by) still
    gives additive values, with that row's output as the base value."""
    rows = table[:2]
    exp = ssx.attribute(mlp, rows, "partition_shap", target=0, background=table[5])
    assert_additive(exp.values.astype(np.float64).sum(1) + exp.base_values, exp.outputs)
    assert_additive(exp.base_values, np.repeat(own_scores(mlp, table[5:6], 0), 2))


def test_kernel_images_additive(cnn, x):
    """Kernel SHAP on superpixels: segment values plus the base value give the
    output; the base value is the model at the image's mean colour."""
    exp = ssx.attribute(
        cnn,
        x,
        "kernel_shap",
        target=1,
        segmentation="grid",
        n_segments=16,
        n_samples=300,
    )
    assert exp.segments.shape == x.shape[:3]
    assert exp.segment_values.shape == (2, 16)
    assert exp.values.shape == x.shape
    total = exp.segment_values.astype(np.float64).sum(1) + exp.base_values
    assert_additive(total, exp.outputs)
    assert_additive(exp.outputs, own_scores(cnn, x))
    means = np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape)
    assert_additive(exp.base_values, own_scores(cnn, means))
    # each segment's value shows on every one of its pixels
    np.testing.assert_allclose(
        exp.map[0], exp.segment_values[0][exp.segments[0]], rtol=1e-5, atol=1e-7
    )


def test_kernel_tables_additive(mlp, table):
    """Kernel SHAP on tables: values plus the base value (the mean over the
    background) give the output."""
    rows = table[:3]
    exp = ssx.attribute(mlp, rows, "kernel_shap", target=0, background=table)
    assert_additive(exp.values.astype(np.float64).sum(1) + exp.base_values, exp.outputs)
    mean = own_scores(mlp, table, 0).astype(np.float64).mean()
    assert_additive(exp.base_values, np.full(3, mean))


@pytest.mark.parametrize("n_samples", [1000, 100])
def test_kernel_recovers_linear_shap_values(table, n_samples):
    """For a linear model and a background integrated independently, Kernel
    SHAP gives w_i (x_i − E[x_i]), with every coalition enumerated (62) or
    only 100 of them sampled."""
    rng = np.random.default_rng(3)
    weights = rng.normal(size=6)
    model = linear_model(weights, 0.5)
    rows = rng.normal(size=(2, 6)).astype(np.float32)
    exp = ssx.attribute(
        model, rows, "kernel_shap", target=0, background=table, n_samples=n_samples
    )
    expected = weights * (rows - table.astype(np.float64).mean(axis=0))
    np.testing.assert_allclose(exp.values, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["kernel_shap", "partition_shap"])
def test_every_evaluation_goes_through_the_adapter(table, method):
    """The model sees exactly the rows the adapter and the explanation count:
    shap evaluates nothing behind the adapter's back."""
    weights = np.linspace(-1.0, 1.0, 6)
    seen = []

    def model(batch):
        seen.append(len(batch))
        return np.stack([batch @ weights, -(batch @ weights)], axis=1)

    adapter = ssx.adapt(model, input_shape=(6,), batch_size=16)
    adapter.n_outputs  # noqa: B018 - probe the output size before counting
    seen.clear()
    before = adapter.n_evaluations
    exp = ssx.attribute(adapter, table[:2], method, target=0, background=table[:8])
    assert sum(seen) == exp.n_evaluations == adapter.n_evaluations - before > 0
    assert max(seen) <= 16


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("kernel_shap", {"segmentation": "grid", "n_segments": 9, "n_samples": 200}),
        ("partition_shap", {"max_evals": 120}),
    ],
)
def test_same_seed_same_result(cnn, x, method, params):
    """One seed, two runs on fresh adapters with different batch sizes:
    identical values."""
    first = ssx.attribute(
        ssx.adapt(cnn, batch_size=32), x, method, target=1, seed=7, **params
    )
    second = ssx.attribute(
        ssx.adapt(cnn, batch_size=64), x, method, target=1, seed=7, **params
    )
    np.testing.assert_allclose(first.values, second.values, rtol=1e-5, atol=1e-7)


def test_kernel_rerun_reuses_scored_coalitions(cnn, x):
    """Raising n_samples evaluates only coalitions not scored before; the same
    request again evaluates nothing and gives the same values."""
    adapter = ssx.adapt(cnn, batch_size=64)
    params = {"segmentation": "grid", "n_segments": 16, "target": 1}
    small = ssx.attribute(adapter, x, "kernel_shap", n_samples=200, **params)
    large = ssx.attribute(adapter, x, "kernel_shap", n_samples=400, **params)
    again = ssx.attribute(adapter, x, "kernel_shap", n_samples=400, **params)
    # 200 samples, the empty and the full coalition, per image; the outputs
    assert small.n_evaluations == 2 * 202 + len(x)
    assert 0 < large.n_evaluations < 2 * 402
    assert again.n_evaluations == 0
    np.testing.assert_array_equal(again.segment_values, large.segment_values)


def test_partition_rerun_evaluates_nothing(mlp, table):
    """The same Partition SHAP request again is answered from the cache."""
    adapter = ssx.adapt(mlp, batch_size=64)
    first = ssx.attribute(
        adapter, table[:2], "partition_shap", target=0, background=table
    )
    again = ssx.attribute(
        adapter, table[:2], "partition_shap", target=0, background=table
    )
    assert first.n_evaluations > 0 and again.n_evaluations == 0
    np.testing.assert_array_equal(again.values, first.values)


@pytest.mark.parametrize("method", ["kernel_shap", "partition_shap"])
def test_tables_without_background_raise(mlp, table, method):
    """Tables with no background (and no baseline row) raise a ValueError
    naming the parameter, before any evaluation."""
    adapter = ssx.adapt(mlp, batch_size=16)
    before = adapter.n_evaluations
    with pytest.raises(ValueError, match="background"):
        ssx.attribute(adapter, table[:2], method, target=0)
    assert adapter.n_evaluations == before


def test_streams_progress_and_pending_inputs(cnn, x):
    """Partials rise in progress to 1, also while an input is being
    explained; an input not yet explained has zero values and its base value
    at its output."""
    adapter = ssx.adapt(cnn, batch_size=16)
    partials = list(
        ssx.stream(
            adapter,
            x,
            "kernel_shap",
            target=1,
            segmentation="grid",
            n_segments=16,
            n_samples=600,
        )
    )
    progress = [p.progress for p in partials]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert len(partials) > 2 * len(x)
    pending = [p for p in partials if p.progress <= 0.5]
    assert pending
    for p in pending:
        assert not p.segment_values[1].any()
        assert p.base_values[1] == p.outputs[1]


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("kernel_shap", {"segmentation": "grid", "n_segments": 16, "n_samples": 800}),
        ("partition_shap", {"max_evals": 800}),
    ],
)
def test_cancel_stops_within_one_batch(cnn, x, method, params):
    """Once cancel() turns true the stream ends quietly, unfinished, within
    one adapter batch, and shap's worker thread is gone."""
    adapter = ssx.adapt(cnn, batch_size=16)
    start = adapter.n_evaluations
    limit = 100
    flipped: list[int] = []

    def cancel() -> bool:
        if adapter.n_evaluations - start >= limit:
            flipped.append(adapter.n_evaluations)
            return True
        return False

    partials = list(
        ssx.stream(adapter, x, method, target=1, seed=1, cancel=cancel, **params)
    )
    assert flipped
    assert adapter.n_evaluations - flipped[0] <= adapter.batch_size
    assert all(p.progress < 1.0 for p in partials)
    assert not [t for t in threading.enumerate() if t.name.startswith("ssx-")]


def test_closing_a_stream_stops_the_worker(cnn, x):
    """A consumer that stops reading after the first partial leaves no worker
    thread running."""
    adapter = ssx.adapt(cnn, batch_size=16)
    stream = ssx.stream(adapter, x, "partition_shap", target=1, max_evals=300)
    first = next(stream)
    assert first.progress < 0.5
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ssx-")]
