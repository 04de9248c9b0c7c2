"""Kernel SHAP and Partition SHAP, on real Keras models."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from factories import images, small_cnn, tabular_mlp
from scipy.ndimage import uniform_filter

import ssxwidgets as ssx
from ssxwidgets.targets import ClassTarget

#: names of the worker threads the SHAP methods start (other ssx threads,
#: such as a widget's job runner, are not theirs to stop)
SHAP_WORKERS = ("ssx-kernel_shap", "ssx-partition_shap")

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
    # 200 samples and the empty coalition per image; the outputs
    assert small.n_evaluations == 2 * 201 + len(x)
    assert large.n_evaluations == 2 * 200
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


def test_partition_image_partials_add_up_and_settle(cnn, x):
    """While an image is being explained its partial values are what the
    recursion gives were the budget spent there: each adds up to the output
    with the base value, they come with a convergence estimate, and they end
    at the unstreamed result."""
    adapter = ssx.adapt(cnn, batch_size=16)
    partials = list(
        ssx.stream(adapter, x[:1], "partition_shap", target=1, max_evals=600)
    )
    during = [p for p in partials if p.progress < 1.0]
    assert len(during) >= 3
    output = own_scores(cnn, x[:1])[0]
    for p in during:
        assert p.values[0].any()
        assert_additive(p.values[0].sum() + p.base_values[0], np.array([output]))
    assert all(p.convergence is not None for p in during[1:])
    final = ssx.attribute(cnn, x[:1], "partition_shap", target=1, max_evals=600)
    np.testing.assert_allclose(partials[-1].values, final.values, atol=1e-6)

    def error(p):
        return float(np.abs(p.values - final.values).sum())

    assert error(during[-1]) < error(during[0])


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
    assert not [t for t in threading.enumerate() if t.name.startswith(SHAP_WORKERS)]


def test_closing_a_stream_stops_the_worker(cnn, x):
    """A consumer that stops reading after the first partial leaves no worker
    thread running."""
    adapter = ssx.adapt(cnn, batch_size=16)
    stream = ssx.stream(adapter, x, "partition_shap", target=1, max_evals=300)
    first = next(stream)
    assert first.progress < 0.5
    stream.close()
    assert not [t for t in threading.enumerate() if t.name.startswith(SHAP_WORKERS)]


def _numpy_image_model(size: int, seed: int = 0):
    """A nonlinear model in plain numpy, `(M, size, size, 3)` → `(M, 2)`,
    whose outputs do not depend on how rows are batched."""
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(size * size * 3, 8)) / size
    head = rng.normal(size=(8, 2))

    def model(batch):
        flat = np.asarray(batch, np.float64).reshape(len(batch), -1)
        return np.tanh(flat @ hidden) @ head

    return model


def test_partition_images_match_shaps_explainer(x):
    """On images, our Owen recursion gives exactly the values of shap's
    PartitionExplainer with the same fill and seed: the same algorithm, with
    the masked images built inside the adapter's call."""
    import shap

    from ssxwidgets.methods.partition_shap import box_blur, seeded_numpy

    model = _numpy_image_model(SIZE)
    adapter = ssx.adapt(model, input_shape=(SIZE, SIZE, 3), batch_size=64)
    exp = ssx.attribute(adapter, x[1:], "partition_shap", target=1, max_evals=300)
    fill = box_blur(x[1], (SIZE // 4, SIZE // 4))

    def scores(batch):
        return model(batch)[:, 1]

    with seeded_numpy(0, 0):
        theirs = shap.PartitionExplainer(scores, shap.maskers.Image(fill))(
            x[1:], max_evals=300, batch_size=64, silent=True
        )
    # the adapter hands scores over as float32, shap's run had float64
    np.testing.assert_allclose(exp.values[0], theirs.values[0], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(exp.base_values, theirs.base_values, rtol=1e-6)


def test_partition_raising_max_evals_evaluates_only_the_new_masks(cnn, x):
    """On images, raising max_evals retraces the recursion from the masks
    already scored: 200 → 400 costs at most 200 new evaluations per image."""
    adapter = ssx.adapt(cnn, batch_size=64)
    ssx.attribute(adapter, x, "partition_shap", target=1, max_evals=200)
    before = adapter.n_evaluations
    larger = ssx.attribute(adapter, x, "partition_shap", target=1, max_evals=400)
    assert 0 < adapter.n_evaluations - before <= len(x) * 200
    total = larger.values.reshape(len(x), -1).astype(np.float64).sum(1)
    assert_additive(total + larger.base_values, larger.outputs)


def test_kernel_sampled_estimate_is_near_the_exact_values():
    """With 12 features (4,094 coalitions), 2,000 paired samples from the
    Shapley kernel give values within a few percent of the exact ones that
    enumerating every coalition gives."""
    import keras

    keras.utils.set_random_seed(4)
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(16, activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(hidden))
    rows = np.random.default_rng(2).normal(size=(1, 12)).astype(np.float32)
    params = {"target": 0, "baseline": 0.0, "l1_reg": False}

    exact = ssx.attribute(model, rows, "kernel_shap", n_samples=5000, **params)
    sampled = ssx.attribute(model, rows, "kernel_shap", n_samples=2000, **params)

    assert exact.n_evaluations == 4094 + 2
    error = np.abs(sampled.values - exact.values).max()
    assert error <= 0.05 * np.abs(exact.values).max(), error
    assert_additive(sampled.values.sum(1) + sampled.base_values, sampled.outputs)


def test_kernel_draws_follow_the_shapley_kernel_in_complementary_pairs():
    """Coalition sizes are drawn with chance proportional to 1 / (s (M − s))
    and each draw is followed by its complement."""
    from ssxwidgets.api import prepare
    from ssxwidgets.methods._sampling import CoalitionSampler
    from ssxwidgets.methods.kernel_shap import shapley_kernel_draw

    request = prepare(
        tabular_mlp(n_features=10),
        np.zeros((1, 10), np.float32),
        "kernel_shap",
        target=0,
        baseline=0.0,
    )
    sampler = CoalitionSampler(
        request,
        10,
        lambda z, rows, index: np.zeros(len(z)),
        key="test",
        draw_block=shapley_kernel_draw,
    )
    z, _ = sampler.draw(20_000)
    z = z[0]
    np.testing.assert_array_equal(z[0::2], ~z[1::2])
    sizes = np.arange(1, 10)
    expected = (1.0 / (sizes * (10 - sizes))) / (1.0 / (sizes * (10 - sizes))).sum()
    observed = np.bincount(z.sum(1), minlength=11)[1:10] / len(z)
    np.testing.assert_allclose(observed, expected, atol=0.01)


@pytest.mark.parametrize("l1_reg", ["num_features(4)", "aic", 0.01, False])
def test_kernel_feature_selection_keeps_values_additive(cnn, x, l1_reg):
    """With few coalitions sampled, l1_reg selects the features that get a
    value (at most k for num_features(k)); the values still sum to the
    output minus the base value."""
    exp = ssx.attribute(
        cnn,
        x[:1],
        "kernel_shap",
        target=1,
        segmentation="grid",
        n_segments=25,
        n_samples=300,
        l1_reg=l1_reg,
    )
    nonzero = np.count_nonzero(exp.segment_values[0])
    if l1_reg == "num_features(4)":
        assert 1 <= nonzero <= 4
    if l1_reg is False:
        assert nonzero == 25
    total = exp.segment_values.astype(np.float64).sum(1) + exp.base_values
    assert_additive(total, exp.outputs)


@pytest.mark.parametrize("weighted", [False, True])
def test_kernel_regression_from_sums_is_the_constrained_least_squares(weighted):
    """The regression solved from running sums ``Σ w z zᵀ`` and ``Σ w z y``
    is the least-squares fit held to ``Σ φ = delta``, as the KKT system of
    that problem gives it, with and without kernel weights."""
    from ssxwidgets.methods.kernel_shap import normal_sums, solve_sums

    rng = np.random.default_rng(6)
    z = rng.random((300, 8)) < 0.5
    y = z @ rng.normal(size=8) + rng.normal(0, 0.1, 300)
    w = rng.uniform(0.5, 2.0, 300) if weighted else np.ones(300)
    delta = 1.7

    gram, moment = normal_sums(z, y, w if weighted else None)
    phi = solve_sums(gram, moment, len(z), delta)

    zw = z * w[:, None]
    kkt = np.block(
        [[2 * zw.T @ z, np.ones((8, 1))], [np.ones((1, 8)), np.zeros((1, 1))]]
    )
    rhs = np.append(2 * zw.T @ y, delta)
    want = np.linalg.solve(kkt, rhs)[:8]
    np.testing.assert_allclose(phi, want, rtol=1e-8, atol=1e-10)
    assert phi.sum() == pytest.approx(delta)


def test_kernel_partials_from_kept_sums_match_a_fresh_run(cnn, x):
    """Kernel SHAP's estimates come from sums kept block by block as samples
    arrive: raising n_samples 500 → 1,000 gives what one fresh run at 1,000
    gives, with only the new samples evaluated."""
    params = {"target": 1, "segmentation": "grid", "n_segments": 36}
    adapter = ssx.adapt(cnn, batch_size=64)
    ssx.attribute(adapter, x[:1], "kernel_shap", n_samples=500, **params)
    raised = ssx.attribute(adapter, x[:1], "kernel_shap", n_samples=1000, **params)
    fresh = ssx.attribute(
        ssx.ModelAdapter(cnn), x[:1], "kernel_shap", n_samples=1000, **params
    )
    assert raised.n_evaluations == 500
    np.testing.assert_allclose(raised.values, fresh.values, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("shape", [(64, 64, 3), (7, 5, 1), (9, 13, 2)])
def test_image_tree_is_shaps_node_for_node(shape):
    """The image partition built without numba is shap's: the same
    clustering rows and the same leaves under every node, in shap's order."""
    import shap
    from shap.utils._masked_model import make_masks

    from ssxwidgets.methods._image_tree import image_tree

    theirs = np.asarray(shap.maskers.Image(np.zeros(shape)).clustering)
    leaves = make_masks(theirs)
    clustering, indptr, indices = image_tree(shape)
    np.testing.assert_array_equal(clustering, theirs)
    np.testing.assert_array_equal(indptr, leaves.indptr)
    np.testing.assert_array_equal(indices, leaves.indices)
