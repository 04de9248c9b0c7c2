"""The model adapter: one batched compiled path, for every kind of model."""

from __future__ import annotations

import warnings

import factories
import numpy as np
import pytest
import tensorflow as tf

import ssxwidgets as ssx
from ssxwidgets.models import ModelAdapter, adapt
from ssxwidgets.targets import ClassTarget


@pytest.fixture(scope="module")
def cnn():
    return factories.small_cnn()


def test_any_batch_length_reuses_one_trace(cnn):
    """Any number of inputs, in any order of lengths, reuses a single trace
    of the compiled function."""
    adapter = ModelAdapter(cnn, batch_size=16)
    target = ClassTarget(1).bind(adapter, factories.images(1))
    for n in (16, 16, 40, 7, 5, 33, 1, 2):
        x = factories.images(n, seed=n)
        scores = adapter.evaluate(x, target.take(np.zeros(n, int)))
        assert scores.shape == (n,)
    traces = adapter._compiled["evaluate"].experimental_get_tracing_count()
    assert traces == 1


def test_evaluate_matches_the_model_and_counts_every_row(cnn):
    """Scalars equal the model's own output; the count is of real rows only."""
    adapter = ModelAdapter(cnn, batch_size=8)
    x = factories.images(11)
    target = ClassTarget(2).bind(adapter, x)
    scores = adapter.evaluate(x, target)
    np.testing.assert_allclose(scores, cnn(x).numpy()[:, 2], rtol=1e-5, atol=1e-6)
    assert adapter.n_evaluations == 11


def test_no_padded_rows_are_computed(cnn):
    """A short call is not padded: the compiled function sees exactly the
    rows asked for, in batches of at most the batch size."""
    adapter = ModelAdapter(cnn, batch_size=8)
    x = factories.images(11)
    target = ClassTarget(0).bind(adapter, x)
    real = adapter._function("evaluate", adapter._evaluate_graph(False))
    seen = []

    def spy(*arrays):
        seen.append(int(arrays[0].shape[0]))
        return real(*arrays)

    adapter._compiled["evaluate"] = spy
    scores = adapter.evaluate(x, target)
    assert seen == [8, 3]
    np.testing.assert_allclose(scores, cnn(x).numpy()[:, 0], rtol=1e-5, atol=1e-6)


def test_predict_method_is_unwrapped_to_the_model(cnn):
    """``model.predict`` gets the compiled Keras path, not a slow callable."""
    adapter = adapt(cnn.predict)
    assert adapter.kind == "keras" and adapter.differentiable
    assert adapt(cnn) is adapt(cnn)


def test_plain_callable_gets_no_gradients(cnn):
    """A numpy callable evaluates, and asking it for gradients is a TypeError."""

    def predict(batch):
        return cnn(batch).numpy()

    adapter = ModelAdapter(predict, input_shape=(32, 32, 3))
    x = factories.images(3)
    target = ClassTarget(0).bind(adapter, x)
    np.testing.assert_allclose(
        adapter.evaluate(x, target), cnn(x).numpy()[:, 0], rtol=1e-5
    )
    with pytest.raises(TypeError, match="plain Python callable"):
        adapter.gradients(x, target)


def test_saved_model_signature_is_used(cnn, tmp_path):
    """A SavedModel loaded with tf.saved_model.load is evaluated and
    differentiated through its serving signature."""
    cnn.export(str(tmp_path / "sm"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    adapter = ModelAdapter(loaded)
    assert adapter.kind == "savedmodel" and adapter.input_shape == (32, 32, 3)
    x = factories.images(2)
    target = ClassTarget(3).bind(adapter, x)
    grads, scores = adapter.gradients(x, target)
    np.testing.assert_allclose(scores, cnn(x).numpy()[:, 3], rtol=1e-5, atol=1e-6)
    assert grads.shape == x.shape and np.abs(grads).sum() > 0


def test_inputs_are_prepared_from_what_users_have(cnn):
    """One image gets a batch axis; tensors and tf.data batches become numpy."""
    adapter = adapt(cnn)
    one = factories.images(1)[0]
    assert adapter.prepare_inputs(one).shape == (1, 32, 32, 3)
    assert adapter.prepare_inputs(tf.constant(one)).shape == (1, 32, 32, 3)
    data = tf.data.Dataset.from_tensor_slices(
        (factories.images(5), np.arange(5))
    ).batch(2)
    assert adapter.prepare_inputs(data).shape == (5, 32, 32, 3)


def test_grayscale_images_get_a_channel_axis():
    """(H, W) and (N, H, W) grayscale inputs fit a model expecting (H, W, 1)."""
    adapter = ModelAdapter(factories.small_cnn(channels=1))
    assert adapter.prepare_inputs(np.zeros((32, 32))).shape == (1, 32, 32, 1)
    assert adapter.prepare_inputs(np.zeros((4, 32, 32))).shape == (4, 32, 32, 1)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (np.zeros((2, 16, 16, 3)), r"shape \(N, 32, 32, 3\).*got \(2, 16, 16, 3\)"),
        (np.zeros((2, 2, 32, 32, 3)), r"got \(2, 2, 32, 32, 3\)"),
        (np.full((1, 32, 32, 3), np.nan), "NaN or Inf"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_bad_inputs_say_what_was_expected(cnn, inputs, message):
    """Wrong shape, NaN and non-numeric inputs raise naming expected and got."""
    with pytest.raises((ValueError, TypeError), match=message):
        adapt(cnn).prepare_inputs(inputs)


def test_softmax_output_warns_to_explain_logits():
    """A model ending in softmax warns, advising the logits."""
    import keras

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3, activation="softmax")(inputs)
    with pytest.warns(ssx.SsxWarning, match="logits"):
        ModelAdapter(keras.Model(inputs, outputs))


def test_output_kind_is_detected():
    """Logits are classes; a 64-d output named like an embedding is an encoder."""
    assert ModelAdapter(factories.small_cnn()).output_kind == "classes"
    assert ModelAdapter(factories.small_encoder()).output_kind == "embedding"


def test_layer_taps_find_the_last_spatial_layer(cnn):
    """Without a name the tap is the last layer with an (N, h, w, c) output,
    and its activations and gradients come back with it."""
    adapter = adapt(cnn)
    assert adapter.find_layer() == "last_conv"
    x = factories.images(3)
    acts, grads, _scores = adapter.layer_gradients(x, ClassTarget(0).bind(adapter, x))
    assert acts.shape == grads.shape == (3, 16, 16, 16)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        adapter.find_layer("nope")


def test_out_of_memory_halves_the_batch_and_retries(cnn, monkeypatch):
    """A ResourceExhaustedError halves the batch size and the call succeeds."""
    adapter = ModelAdapter(cnn, batch_size=8)
    x = factories.images(8)
    target = ClassTarget(0).bind(adapter, x)
    real = adapter._function("evaluate", adapter._evaluate_graph(False))
    calls = []

    def flaky(*arrays):
        calls.append(len(arrays[0]))
        if len(arrays[0]) > 4:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM")
        return real(*arrays)

    adapter._compiled["evaluate"] = flaky
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = adapter.evaluate(x, target)
    assert adapter.batch_size == 4 and calls[0] == 8
    np.testing.assert_allclose(scores, cnn(x).numpy()[:, 0], rtol=1e-5, atol=1e-6)


def test_cancel_stops_between_batches(cnn):
    """A cancel check that turns true stops evaluation before the next batch."""
    adapter = ModelAdapter(cnn, batch_size=4)
    x = factories.images(20)
    target = ClassTarget(0).bind(adapter, x)
    with pytest.raises(ssx.Cancelled):
        adapter.evaluate(x, target, cancel=lambda: adapter.n_evaluations >= 8)
    assert adapter.n_evaluations == 8


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_blends_are_made_inside_the_call_as_numpy_would(cnn, kind):
    """evaluate_blend scores x·m + f·(1 − m) for each row's input, fill row
    and mask (every channel alike), as evaluating the blends built in numpy
    does, for a Keras model and for a plain callable."""
    rng = np.random.default_rng(0)
    x = factories.images(2)
    fill = factories.images(3, seed=9)
    masks = rng.random((7, 32, 32)) < 0.5
    if kind == "float":
        masks = rng.random((7, 32, 32)).astype(np.float32)
    rows = np.array([0, 1, 1, 0, 1, 0, 0])
    fill_rows = np.array([2, 0, 1, 1, 2, 0, 2])
    m = masks[..., None].astype(np.float32)
    blends = x[rows] * m + fill[fill_rows] * (1 - m)

    def plain(batch):
        return cnn(batch, training=False).numpy()

    for model in (cnn, ModelAdapter(plain, input_shape=(32, 32, 3))):
        adapter = ModelAdapter(model, batch_size=4) if model is cnn else model
        target = ClassTarget(3).bind(adapter, x)
        before = adapter.n_evaluations  # a callable is probed once for its size
        scores = adapter.evaluate_blend(x, fill, masks, target, rows, fill_rows)
        want = cnn(blends).numpy()[:, 3]
        np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)
        assert adapter.n_evaluations - before == 7


def test_paired_float_blends_match_the_general_form(cnn):
    """With no fill rows (each row's fill is its own input's) a float blend
    takes the shorter ``f + (x − f)·m`` form; it scores what ``x·m +
    f·(1 − m)`` built in numpy scores."""
    rng = np.random.default_rng(1)
    x = factories.images(2)
    fill = factories.images(2, seed=8)
    masks = rng.random((5, 32, 32)).astype(np.float32)
    rows = np.array([1, 0, 1, 1, 0])
    adapter = ModelAdapter(cnn, batch_size=4)
    target = ClassTarget(1).bind(adapter, x)
    m = masks[..., None]
    want = cnn(x[rows] * m + fill[rows] * (1 - m)).numpy()[:, 1]
    scores = adapter.evaluate_blend(x, fill, masks, target, rows)
    np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-5)


def test_shifted_gradients_are_the_gradients_at_the_shifted_points(cnn):
    """gradients_shifted at ``x[rows] + scales·shifts[shift_rows]`` gives what
    gradients gives at those points built in numpy, and counts one
    evaluation per point."""
    rng = np.random.default_rng(2)
    x = factories.images(2)
    shifts = rng.normal(0, 0.1, (3, 32, 32, 3)).astype(np.float32)
    rows = np.array([0, 1, 1, 0, 1, 0, 0])
    shift_rows = np.array([2, 0, 1, 1, 2, 0, 0])
    scales = np.array([1.0, -1.0, 0.5, 0.0, 2.0, -0.5, 1.0], np.float32)
    adapter = ModelAdapter(cnn, batch_size=4)
    target = ClassTarget(2).bind(adapter, x)
    points = x[rows] + scales[:, None, None, None] * shifts[shift_rows]
    want_grads, want_scores = adapter.gradients(points, target, rows)
    before = adapter.n_evaluations
    grads, scores = adapter.gradients_shifted(
        x, shifts, target, rows, shift_rows, scales
    )
    assert adapter.n_evaluations - before == len(rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grads, want_grads, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="shifts must be shaped like the inputs"):
        adapter.gradients_shifted(x, shifts[..., :1], target, rows, shift_rows, scales)


def test_weights_fingerprint_follows_the_weights(cnn):
    """The fingerprint that keys cached samples is stable while the weights
    are, and changes when any weight changes (training, loading)."""
    model = factories.small_cnn(seed=3)
    adapter = ModelAdapter(model)
    first = adapter.weights_fingerprint()
    assert adapter.weights_fingerprint() == first
    weights = model.get_weights()
    weights[-1] = weights[-1] + 1e-6
    model.set_weights(weights)
    assert adapter.weights_fingerprint() != first
