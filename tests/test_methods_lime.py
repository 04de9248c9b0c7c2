"""LIME (`ssxwidgets.methods.lime`) on real Keras models."""

from __future__ import annotations

import numpy as np
import pytest
from factories import images, small_cnn

import ssxwidgets as ssx
from ssxwidgets.segmentation import segment

SIZE = 32


def _linear_in_segments(coefficients: np.ndarray, segments: np.ndarray):
    """A Keras model whose one output is ``Σ_s c_s · mean(x over segment s)``
    (a dense layer with fixed weights on the flattened image)."""
    import keras

    counts = np.bincount(segments.ravel())
    per_pixel = coefficients[segments] / counts[segments] / 3.0
    weights = np.repeat(per_pixel[..., None], 3, axis=-1).reshape(-1, 1)
    inputs = keras.Input((SIZE, SIZE, 3))
    dense = keras.layers.Dense(1, use_bias=False, name="logits")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([weights.astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def grid() -> np.ndarray:
    return segment(np.zeros((SIZE, SIZE, 3)), "grid", 16)


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(SIZE)


def test_recovers_the_order_of_a_model_linear_in_segments(grid: np.ndarray) -> None:
    """On a model linear in segment presence (baseline 0), LIME's coefficients
    are ordered exactly like the true effects c_s · mean_s, the map carries
    each coefficient over its segment, and the fit is near perfect."""
    rng = np.random.default_rng(1)
    coefficients = rng.permutation(np.linspace(-3.0, 3.0, 16))
    model = _linear_in_segments(coefficients, grid)
    x = images(1, SIZE)
    effects = np.array([coefficients[s] * x[0][grid == s].mean() for s in range(16)])

    exp = ssx.attribute(
        model, x, "lime", target=0, n_samples=1000, segmentation=grid, baseline=0.0
    )

    np.testing.assert_array_equal(
        np.argsort(exp.segment_values[0]), np.argsort(effects)
    )
    np.testing.assert_allclose(exp.segment_values[0], effects, atol=0.05)
    np.testing.assert_allclose(exp.map[0], exp.segment_values[0][grid], rtol=1e-5)
    np.testing.assert_array_equal(exp.segments[0], grid)
    assert exp.extras["score"][0] > 0.99
    assert exp.values.shape == x.shape and exp.done


def test_recovers_the_order_of_a_linear_table_model() -> None:
    """On tables, with a background, LIME's coefficients follow
    w_f · (x_f − mean of the background's f) in order."""
    import keras

    weights = np.array([3.0, -2.0, 0.5, 1.5, -0.7, 2.4], np.float32)
    inputs = keras.Input((6,))
    dense = keras.layers.Dense(1, use_bias=False, name="logits")
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([weights[:, None]])
    rng = np.random.default_rng(0)
    background = rng.normal(size=(64, 6)).astype(np.float32)
    x = np.full((1, 6), 2.0, np.float32)
    effects = weights * (x[0] - background.mean(0))

    exp = ssx.attribute(
        model, x, "lime", target=0, n_samples=2000, background=background
    )

    assert exp.values.shape == (1, 6) and exp.segments is None
    np.testing.assert_array_equal(np.argsort(exp.values[0]), np.argsort(effects))


def test_agrees_with_the_lime_package_on_a_cnn(cnn, grid: np.ndarray) -> None:
    """At 5,000 samples, on the same segmentation and fill (each superpixel's
    mean colour, lime's hide_color=None), the ranks of our coefficients match
    lime_image's with Spearman ≥ 0.9."""
    from lime.lime_image import LimeImageExplainer
    from scipy.stats import spearmanr

    x = images(1, SIZE, seed=3)
    target = 2

    ours = ssx.attribute(
        cnn,
        x,
        "lime",
        target=target,
        n_samples=5000,
        segmentation=grid,
        baseline="superpixel_mean",
    )
    theirs = LimeImageExplainer(random_state=0).explain_instance(
        x[0].astype(np.float64),
        lambda batch: cnn(batch.astype(np.float32), training=False).numpy(),
        labels=(target,),
        top_labels=None,
        hide_color=None,
        num_samples=5000,
        batch_size=500,
        segmentation_fn=lambda image: grid,
    )
    reference = np.zeros(16)
    for feature, weight in theirs.local_exp[target]:
        reference[feature] = weight

    rho = spearmanr(ours.segment_values[0], reference).statistic
    assert rho >= 0.9, f"Spearman {rho:.3f} with lime_image"


def test_raising_n_samples_evaluates_only_the_new_samples(cnn) -> None:
    """After 1,000 samples, asking for 2,000 costs at most 1,050 evaluations."""
    adapter = ssx.ModelAdapter(cnn)
    x = images(1, SIZE, seed=4)

    first = ssx.attribute(
        adapter, x, "lime", target=0, n_samples=1000, segmentation="grid", n_segments=16
    )
    second = ssx.attribute(
        adapter, x, "lime", target=0, n_samples=2000, segmentation="grid", n_segments=16
    )

    assert first.n_evaluations <= 1000 + 50
    assert second.n_evaluations <= 1050


def test_lowering_n_samples_reuses_a_prefix(cnn) -> None:
    """After 2,000 samples, asking for 1,000 evaluates nothing and equals a
    fresh run at 1,000."""
    adapter = ssx.ModelAdapter(cnn)
    x = images(1, SIZE, seed=5)
    settings = {"target": 0, "segmentation": "grid", "n_segments": 16}

    ssx.attribute(adapter, x, "lime", n_samples=2000, **settings)
    lowered = ssx.attribute(adapter, x, "lime", n_samples=1000, **settings)
    fresh = ssx.attribute(ssx.ModelAdapter(cnn), x, "lime", n_samples=1000, **settings)

    assert lowered.n_evaluations == 0
    np.testing.assert_allclose(
        lowered.segment_values, fresh.segment_values, rtol=1e-4, atol=1e-7
    )


def test_one_seed_gives_one_result(cnn) -> None:
    """Two fresh runs with the same seed agree exactly; another seed differs."""
    x = images(1, SIZE, seed=6)
    settings = {"target": 1, "n_samples": 300, "segmentation": "grid", "n_segments": 16}

    runs = [
        ssx.attribute(ssx.ModelAdapter(cnn), x, "lime", seed=seed, **settings)
        for seed in (7, 7, 8)
    ]

    np.testing.assert_array_equal(runs[0].segment_values, runs[1].segment_values)
    assert not np.array_equal(runs[0].segment_values, runs[2].segment_values)


def test_estimates_settle_as_samples_grow(cnn) -> None:
    """Partials stream with rising progress, and the relative change between
    partials at the end is under a quarter of the first one."""
    x = images(1, SIZE, seed=7)

    partials = list(
        ssx.stream(
            cnn, x, "lime", target=0, n_samples=4000, segmentation="grid", n_segments=16
        )
    )

    progress = [p.progress for p in partials]
    assert progress == sorted(progress) and progress[-1] == 1.0
    changes = [p.convergence for p in partials[1:]]
    assert len(changes) >= 4 and all(c is not None for c in changes)
    assert changes[-1] < 0.25 * changes[0]


def test_cancel_stops_within_one_batch(cnn) -> None:
    """Once cancel() turns true after the first partial, the stream ends
    without a final result and at most one batch more is evaluated."""
    adapter = ssx.ModelAdapter(cnn)
    cancelled = []
    stream = ssx.stream(
        adapter,
        images(1, SIZE, seed=8),
        "lime",
        target=0,
        n_samples=5000,
        segmentation="grid",
        n_segments=16,
        cancel=lambda: bool(cancelled),
    )

    first = next(stream)
    before = adapter.n_evaluations
    cancelled.append(True)
    rest = list(stream)

    assert first.progress < 1 and rest == []
    assert adapter.n_evaluations - before <= adapter.batch_size


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"n_samples": 0}, r"n_samples must be in \[2, .*got 0"),
        ({"n_samples": 10**9}, r"n_samples must be in .*got 1000000000"),
        ({"segmentation": "watershed"}, "one of 'slic'.*got 'watershed'"),
        ({"segmentation": np.zeros((8, 8), int)}, r"\(32, 32\).*got \(8, 8\)"),
        ({"kernel_width": 0}, "kernel_width must be .*> 0; got 0"),
    ],
)
def test_bad_parameters_raise_before_any_evaluation(
    cnn, params: dict, pattern: str
) -> None:
    """Bad parameters raise a ValueError naming what was expected and what
    arrived, before the model is evaluated once."""
    adapter = ssx.ModelAdapter(cnn)

    with pytest.raises(ValueError, match=pattern):
        ssx.attribute(adapter, images(1, SIZE), "lime", target=0, **params)
    assert adapter.n_evaluations == 0


def test_sampler_draws_are_prefix_stable_and_paired() -> None:
    """The shared CoalitionSampler gives the same first k coalitions however
    many are drawn, in complementary pairs, and re-evaluates nothing."""
    from ssxwidgets.api import prepare
    from ssxwidgets.methods._sampling import CoalitionSampler, table_scorer

    def model(batch: np.ndarray) -> np.ndarray:
        return batch.sum(axis=1, keepdims=True)

    adapter = ssx.ModelAdapter(model, input_shape=(10,), output_kind="classes")
    rows = np.arange(20, dtype=np.float32).reshape(2, 10)

    def sampler(request):
        scorer = table_scorer(request, np.zeros_like(rows))
        return CoalitionSampler(request, 10, scorer, key="test")

    one = prepare(adapter, rows, "lime", target=0, seed=11)
    z_small, _ = sampler(one).draw(100)
    z_large, scores = sampler(one).draw(300)
    spent = one.n_evaluations
    again, _ = sampler(one).draw(200)
    fresh = prepare(adapter, rows, "lime", target=0, seed=11)
    fresh.cache = {}
    z_fresh, _ = sampler(fresh).draw(300)

    np.testing.assert_array_equal(z_large[:, :100], z_small)
    np.testing.assert_array_equal(z_fresh, z_large)
    np.testing.assert_array_equal(z_large[:, 0::2], ~z_large[:, 1::2])
    np.testing.assert_allclose(scores, np.einsum("nsf,nf->ns", z_large, rows))
    assert spent == 2 * 300 and one.n_evaluations == spent
    np.testing.assert_array_equal(again, z_large[:, :200])


def test_orthogonal_design_is_balanced_uniform_and_prefix_stable() -> None:
    """LIME's coalitions come as fold-over Hadamard designs: over each full
    design every feature is present half the time and every two features
    are independent (uncorrelated); pairs are complements; the first k
    samples do not depend on how many are drawn; and across designs each
    sample is still uniform (about half the features present)."""
    from ssxwidgets.methods._sampling import BLOCK, orthogonal_rows

    n_features = 50  # a design of 64 rows, 128 samples with complements
    blocks = [orthogonal_rows(3, "lime", b, n_features) for b in range(40)]
    halves = np.concatenate(blocks)
    design = halves[:64].astype(float)
    np.testing.assert_array_equal(design.mean(axis=0), np.full(n_features, 0.5))
    centred = design - 0.5
    np.testing.assert_allclose(centred.T @ centred, np.eye(n_features) * 16)
    again = np.concatenate(
        [orthogonal_rows(3, "lime", b, n_features) for b in range(3)]
    )
    np.testing.assert_array_equal(again, halves[: 3 * BLOCK // 2])
    assert abs(halves.mean() - 0.5) < 0.01
    other = orthogonal_rows(4, "lime", 0, n_features)
    assert not np.array_equal(other, blocks[0])
