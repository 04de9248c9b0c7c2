"""Speed of the engine, as ratios measured in one run.

Run from the repository root::

    .venv/bin/python -m benchmarks              # everything
    .venv/bin/python -m benchmarks --quick      # the small CNN only

The yardstick is the floor: the same number of model evaluations done as
well-batched calls of one compiled function. Every perturbation method is
timed against the floor for the evaluations it made; gradient methods against
one batched forward + backward pass over the same points; and `lime` and
`shap` as users typically call them (``model.predict``, lime's default batch of
10). Timings are the best of a few repeats, after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

import ssxwidgets as ssx
from ssxwidgets.models import ModelAdapter

EVALUATIONS = 1000


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    """The fastest of `repeats` timed calls of `fn`, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def floor_forward(model: Any, x: np.ndarray, n: int, batch_size: int) -> float:
    """Seconds for `n` evaluations as full batches of one compiled call."""
    fn = tf.function(lambda b: model(b, training=False))
    batch = tf.constant(np.repeat(x, batch_size, axis=0))
    fn(batch)
    n_batches = -(-n // batch_size)

    def run() -> None:
        for _ in range(n_batches):
            fn(batch).numpy()

    return best_of(run) * n / (n_batches * batch_size)


def floor_gradient(model: Any, x: np.ndarray, n: int, batch_size: int) -> float:
    """Seconds for `n` forward + backward passes in full compiled batches."""

    @tf.function
    def grad(b: Any) -> Any:
        with tf.GradientTape() as tape:
            tape.watch(b)
            y = tf.reduce_sum(model(b, training=False)[:, 0])
        return tape.gradient(y, b)

    batch = tf.constant(np.repeat(x, batch_size, axis=0))
    grad(batch)
    n_batches = -(-n // batch_size)

    def run() -> None:
        for _ in range(n_batches):
            grad(batch).numpy()

    return best_of(run) * n / (n_batches * batch_size)


def time_method(
    model: Any, x: np.ndarray, method: str, **params: Any
) -> tuple[float, int]:
    """Seconds and evaluations of one ssx.attribute call (after a warm-up)."""
    ssx.attribute(model, x, method=method, target=0, **params)
    result: dict[str, int] = {}

    def run() -> None:
        result["n"] = ssx.attribute(
            model, x, method=method, target=0, **params
        ).n_evaluations

    return best_of(run, repeats=2), result["n"]


PERTURBATION = {
    "lime": {"n_samples": EVALUATIONS, "segmentation": "grid", "n_segments": 64},
    "rise": {"n_samples": EVALUATIONS},
    "kernel_shap": {"n_samples": EVALUATIONS, "segmentation": "grid", "n_segments": 64},
    "partition_shap": {"max_evals": EVALUATIONS},
    "occlusion": {"window": 4, "stride": 2},
}


def bench_model(name: str, model: Any, x: np.ndarray, rows: list[str]) -> None:
    """Every ratio for one model, appended to `rows` as printable lines."""
    adapter = ModelAdapter(model)
    bs = adapter.batch_size
    rows.append(
        f"\n== {name}: input {x.shape[1:]}, batch {bs}, device {adapter.device}"
    )
    floor_1000 = floor_forward(model, x, EVALUATIONS, bs)
    rows.append(f"floor: {EVALUATIONS} evaluations in {floor_1000:.3f} s")

    for method, params in PERTURBATION.items():
        for label, target_model in (("keras", model), ("predict", model.predict)):
            try:
                seconds, n = time_method(target_model, x, method, **params)
            except (ImportError, ValueError) as error:
                rows.append(f"{method:>15} [{label}]: skipped ({error})")
                continue
            floor = floor_forward(model, x, n, bs)
            rows.append(
                f"{method:>15} [{label:>7}]: {seconds:.3f} s for {n} evals "
                f"= {seconds / floor:.2f}x floor"
            )

    for method, params, _points in (
        ("integrated_gradients", {"n_steps": 64}, 65),
        ("smoothgrad", {"n_samples": 64}, 64),
    ):
        seconds, n = time_method(model, x, method, **params)
        floor = floor_gradient(model, x, n, bs)
        rows.append(
            f"{method:>15}: {seconds:.3f} s for {n} gradient evals "
            f"= {seconds / floor:.2f}x forward+backward floor"
        )


def bench_lime_users(model: Any, x: np.ndarray, rows: list[str]) -> None:
    """ssx LIME against lime_image and shap Partition as users call them."""
    from lime import lime_image

    image = x[0].astype(np.float64)
    explainer = lime_image.LimeImageExplainer(random_state=0)

    def lime_user() -> None:
        explainer.explain_instance(
            image,
            model.predict,
            top_labels=1,
            num_samples=EVALUATIONS,
            progress_bar=False,
        )

    def predict_quiet(batch: np.ndarray) -> np.ndarray:
        return model.predict(batch, verbose=0)

    def lime_user_quiet() -> None:
        explainer.explain_instance(
            image,
            predict_quiet,
            top_labels=1,
            num_samples=EVALUATIONS,
            progress_bar=False,
        )

    lime_seconds = best_of(lime_user_quiet, repeats=1)
    ours, _ = time_method(
        model, x, "lime", n_samples=EVALUATIONS, segmentation="quickshift"
    )
    rows.append(
        f"lime_image (model.predict, batch 10): {lime_seconds:.3f} s; "
        f"ssx lime {ours:.3f} s = {lime_seconds / ours:.1f}x faster"
    )

    import shap

    masker = shap.maskers.Image("blur(16,16)", x.shape[1:])
    shap_explainer = shap.Explainer(predict_quiet, masker)

    def shap_user() -> None:
        shap_explainer(
            x[:1], max_evals=EVALUATIONS, batch_size=50, outputs=[0], silent=True
        )

    shap_seconds = best_of(shap_user, repeats=1)
    ours, _ = time_method(model, x, "partition_shap", max_evals=EVALUATIONS)
    rows.append(
        f"shap Partition (model.predict): {shap_seconds:.3f} s; "
        f"ssx partition_shap {ours:.3f} s = {shap_seconds / ours:.1f}x "
        "faster"
    )
    del lime_user


def bench_incremental(model: Any, x: np.ndarray, rows: list[str]) -> None:
    """New evaluations when n_samples rises 1,000 → 2,000; peak memory."""
    adapter = ModelAdapter(model)
    for method in ("lime", "rise"):
        ssx.attribute(adapter, x, method=method, target=0, n_samples=1000)
        before = adapter.n_evaluations
        ssx.attribute(adapter, x, method=method, target=0, n_samples=2000)
        rows.append(
            f"{method}: n_samples 1000 -> 2000 cost "
            f"{adapter.n_evaluations - before} new evaluations"
        )
        peaks = []
        for n in (1000, 4000):
            tracemalloc.start()
            ssx.attribute(
                ModelAdapter(model), x, method=method, target=0, n_samples=n, seed=n
            )
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        rows.append(
            f"{method}: peak Python memory {peaks[0]:.1f} MiB at 1000 "
            f"samples, {peaks[1]:.1f} MiB at 4000"
        )


def bench_convergence(model: Any, x: np.ndarray, rows: list[str]) -> None:
    """Samples for Spearman ≥ 0.9 with a 10,000-sample reference: ssx LIME
    against lime_image on the same segmentation and fill."""
    from lime import lime_image
    from scipy.stats import spearmanr

    from ssxwidgets.segmentation import segment

    segments = segment(x[0], "slic", 50)
    reference = ssx.attribute(
        model,
        x,
        method="lime",
        target=0,
        n_samples=10_000,
        segmentation=segments,
        seed=99,
    ).segment_values[0]

    def ours(n: int) -> np.ndarray:
        exp = ssx.attribute(
            model,
            x,
            method="lime",
            target=0,
            n_samples=n,
            segmentation=segments,
            seed=1,
        )
        return exp.segment_values[0]

    def theirs(n: int) -> np.ndarray:
        explainer = lime_image.LimeImageExplainer(random_state=1)
        result = explainer.explain_instance(
            x[0].astype(np.float64),
            lambda b: model.predict(b, verbose=0),
            labels=(0,),
            top_labels=None,
            num_samples=n,
            progress_bar=False,
            segmentation_fn=lambda image: segments,
            num_features=10_000,
            batch_size=100,
        )
        values = np.zeros(segments.max() + 1)
        for feature, weight in result.local_exp[0]:
            values[feature] = weight
        return values

    for label, fn in (("ssx lime", ours), ("lime_image", theirs)):
        needed = None
        for n in (100, 200, 400, 800, 1600, 3200, 6400):
            if spearmanr(fn(n), reference).statistic >= 0.9:
                needed = n
                break
        rows.append(f"{label}: {needed or '>6400'} samples to Spearman >= 0.9")


def small_cnn() -> Any:
    """The demo probe when it is shipped; else a CNN of the same size."""
    try:
        from ssxwidgets import demo

        return demo.load_probe()
    except Exception:  # the demo weights are optional for benchmarking
        import keras

        keras.utils.set_random_seed(0)
        inputs = keras.Input((64, 64, 3))
        h = keras.layers.Conv2D(32, 5, strides=2, activation="relu")(inputs)
        for filters in (64, 64, 128):
            h = keras.layers.Conv2D(filters, 3, strides=2, activation="relu")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(inputs, keras.layers.Dense(6)(h))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="the small CNN only, no MobileNetV2"
    )
    args = parser.parse_args()
    rows: list[str] = []
    rng = np.random.default_rng(0)

    cnn = small_cnn()
    x64 = rng.random((1, 64, 64, 3), dtype=np.float32)
    bench_model("small CNN", cnn, x64, rows)
    bench_lime_users(cnn, x64, rows)
    bench_incremental(cnn, x64, rows)
    bench_convergence(cnn, x64, rows)
    if not args.quick:
        import keras

        mobilenet = keras.applications.MobileNetV2(
            weights=None, input_shape=(224, 224, 3), classifier_activation=None
        )
        x224 = rng.random((1, 224, 224, 3), dtype=np.float32)
        bench_model("MobileNetV2", mobilenet, x224, rows)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
