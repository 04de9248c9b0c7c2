"""Train the demo's image models and write their weights and model cards.

Run through ``python -m ssxwidgets.demo.train {shapes,shortcut}``:

``shapes``
    A contrastive encoder (SimCLR-style, NT-Xent) trained from scratch on
    pairs of views of the same object: the generator draws each object twice,
    its class kept and its size and rotation jittered slightly, on different
    backgrounds, in different colours and at different positions; TensorFlow
    ops then crop (keeping the object), flip, transpose and colour-jitter each
    view. A linear probe is fitted on the frozen embeddings, and the same is
    done on a randomly initialised encoder as the baseline.
``shortcut``
    A supervised classifier of the same architecture trained on
    ``shapes(..., shortcut=True)``, where a corner patch gives the class away.

Each run measures its model on freshly generated data (seeds never used in
training), computes integrated gradients to see where the attributions land,
and writes ``<model>.weights.h5`` with a model card ``<model>.json`` (and a
short ``.md``) into the output folder. ``quick=True`` runs a few steps only.

Integrated gradients: Sundararajan, Taly & Yan, "Axiomatic Attribution for
Deep Networks", ICML 2017. NT-Xent: Chen et al., "A Simple Framework for
Contrastive Learning of Visual Representations" (SimCLR), ICML 2020.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._log import logger
from .._version import __version__
from . import image_models
from .shapes import CLASS_NAMES, IMAGE_SIZE, ShapesData, shape_pairs, shapes

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

__all__ = [
    "CHECK_SEED",
    "EVAL_SEED",
    "ImageRecipe",
    "blur_baseline",
    "ig_max_inside",
    "integrated_gradients",
    "train",
]

# Seeds of the evaluation data. Training draws its data from seeds at or above
# _TRAIN_SEED_BASE, so these are never seen in training.
EVAL_SEED = 7_000
CHECK_SEED = 7_001
_TRAIN_SEED_BASE = 100_000_000


@dataclass(frozen=True)
class ImageRecipe:
    """Every setting of a training run; it is written into the model card."""

    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    temperature: float = 0.2
    projection_dim: int = 64
    crop_scale: tuple[float, float] = (0.6, 1.0)
    size_jitter: float = 0.1
    angle_jitter_deg: float = 15.0
    n_probe_train: int = 3000
    probe_l2: float = 1e-3
    n_eval: int = 2000
    n_check: int = 512
    n_ig: int = 200
    ig_steps: int = 32
    ig_blur_sigma: float = 5.0


SHAPES_RECIPE = ImageRecipe(
    steps=3000,
    batch_size=64,
    learning_rate=2e-3,
    warmup_steps=50,
    weight_decay=1e-4,
)
SHORTCUT_RECIPE = ImageRecipe(
    steps=600,
    batch_size=32,
    learning_rate=2e-3,
    warmup_steps=30,
    weight_decay=1e-4,
    n_probe_train=0,
)
_QUICK: dict[str, Any] = {
    "steps": 3,
    "batch_size": 8,
    "warmup_steps": 1,
    "n_probe_train": 64,
    "n_eval": 64,
    "n_check": 32,
    "n_ig": 4,
    "ig_steps": 4,
}


def train(
    name: str, out: Path = image_models.WEIGHTS_DIR, seed: int = 0, quick: bool = False
) -> dict[str, Any]:
    """Train ``name`` (``"shapes"`` or ``"shortcut"``) and write it into ``out``.

    Parameters
    ----------
    name
        ``"shapes"``: contrastive encoder, linear probe and random-encoder
        baseline. ``"shortcut"``: supervised classifier on the shortcut data.
    out
        Folder for the weights and model cards; created if missing.
    seed
        Seed of the initialisation and the training data.
    quick
        Run a few steps on tiny data only (seconds), e.g. in the test suite.

    Returns
    -------
    dict
        The model card, as written to ``<model>.json``.
    """
    if name not in ("shapes", "shortcut"):
        raise ValueError(f"name must be 'shapes' or 'shortcut'; got {name!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    recipe = SHAPES_RECIPE if name == "shapes" else SHORTCUT_RECIPE
    if quick:
        recipe = replace(recipe, **_QUICK)
    out = Path(out)
    if quick and out.resolve() == image_models.WEIGHTS_DIR.resolve():
        # A quick run must never overwrite the shipped weights.
        out = Path(tempfile.mkdtemp(prefix="ssx-quick-"))
        logger.info("quick run: writing into %s, not the shipped weights", out)
    out.mkdir(parents=True, exist_ok=True)
    _configure_tensorflow(seed)

    if name == "shapes":
        card = _train_shapes(recipe, out, seed, quick)
    else:
        card = _train_shortcut(recipe, out, seed, quick)
    return card


# --------------------------------------------------------------------- shapes


def _train_shapes(
    recipe: ImageRecipe, out: Path, seed: int, quick: bool
) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    started = time.perf_counter()
    encoder = image_models.build_encoder("shapes_encoder", seed=seed)
    # The projection head is used in training only and never shipped, so its
    # batch normalisation (which centres the embeddings and keeps the loss
    # from starting collapsed) leaves no running statistics behind to trust.
    head = keras.Sequential(
        [
            keras.Input((image_models.EMBEDDING_DIM,)),
            keras.layers.BatchNormalization(name="projection_norm0"),
            keras.layers.Dense(256, name="projection_hidden"),
            keras.layers.BatchNormalization(name="projection_norm1"),
            keras.layers.Activation("relu"),
            keras.layers.Dense(recipe.projection_dim, name="projection"),
        ],
        name="projection_head",
    )
    variables = encoder.trainable_variables + head.trainable_variables
    optimizer = _optimizer(recipe)
    temperature = tf.constant(recipe.temperature, tf.float32)
    crop_scale = recipe.crop_scale

    @tf.function(autograph=False, reduce_retracing=True)
    def step(
        first: tf.Tensor, second: tf.Tensor, boxes: tf.Tensor, seeds: tf.Tensor
    ) -> tf.Tensor:
        views = tf.concat([first, second], axis=0)
        views = augment(views, boxes, seeds, crop_scale)
        with tf.GradientTape() as tape:
            z = head(encoder(views, training=True), training=True)
            loss = nt_xent(z, temperature)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    def batches() -> Iterator[tuple[np.ndarray, ...]]:
        for index in range(recipe.steps):
            first, second = shape_pairs(
                recipe.batch_size,
                seed=_train_seed(seed, 0, index),
                size_jitter=recipe.size_jitter,
                angle_jitter=np.deg2rad(recipe.angle_jitter_deg),
            )
            boxes = np.concatenate([_boxes(first.masks), _boxes(second.masks)])
            yield first.images, second.images, boxes

    logger.info(
        "shapes: training a %d-parameter encoder, %d steps of %d pairs",
        encoder.count_params(),
        recipe.steps,
        recipe.batch_size,
    )
    losses = _run_steps(step, batches(), recipe.steps, seed)
    train_seconds = time.perf_counter() - started

    # Linear probes on the frozen trained and random encoders.
    random_encoder = image_models.build_encoder(
        "shapes_random_encoder", seed=image_models.RANDOM_ENCODER_SEED
    )
    probe_data = shapes(recipe.n_probe_train, seed=_train_seed(seed, 1, 0))
    probe = image_models.build_classifier(encoder, "shapes_probe")
    _fit_linear_probe(probe, encoder, probe_data, recipe.probe_l2)
    random_probe = image_models.build_classifier(random_encoder, "random_probe")
    _fit_linear_probe(random_probe, random_encoder, probe_data, recipe.probe_l2)

    evaluation = shapes(recipe.n_eval, seed=EVAL_SEED)
    check = shapes(recipe.n_check, seed=CHECK_SEED)
    accuracy = _accuracy(probe, evaluation)
    random_accuracy = _accuracy(random_probe, evaluation)
    logger.info(
        "shapes: probe accuracy %.3f, random-encoder probe %.3f",
        accuracy,
        random_accuracy,
    )
    ig = _ig_report(probe, evaluation, recipe)
    ig_random = _ig_report(random_probe, evaluation, recipe)
    wall = time.perf_counter() - started

    encoder.save_weights(out / image_models.ENCODER_FILE)
    probe.save_weights(out / image_models.PROBE_FILE)
    random_encoder.save_weights(out / image_models.RANDOM_ENCODER_FILE)

    card = _card(
        model="shapes_encoder",
        files=[
            image_models.ENCODER_FILE,
            image_models.PROBE_FILE,
            image_models.RANDOM_ENCODER_FILE,
        ],
        recipe=recipe,
        seed=seed,
        quick=quick,
        parameters=int(encoder.count_params()),
        train_seconds=train_seconds,
        wall_seconds=wall,
        losses=losses,
        method=(
            "SimCLR-style contrastive learning (NT-Xent) from scratch. Views of "
            "one object: the generator draws it twice (same class, size and "
            "rotation jittered slightly) on different backgrounds, colours and "
            "positions; TF-op augmentations then crop keeping the object, flip, "
            "transpose and jitter colour. A 2-layer projection head is used in "
            "training only. Linear probe: multinomial logistic regression on "
            "standardised embeddings, folded into one dense layer `logits`."
        ),
        data={
            "generator": "ssxwidgets.demo.shapes",
            "train_pairs": recipe.steps * recipe.batch_size,
            "train_seeds": f">= {_TRAIN_SEED_BASE} (one per step)",
            "probe_train": {"n": recipe.n_probe_train, "seed": probe_data.seed},
        },
        metrics={
            "accuracy": accuracy,
            "random_encoder_probe_accuracy": random_accuracy,
            "chance": 1.0 / len(CLASS_NAMES),
            "eval": {"n": recipe.n_eval, "seed": EVAL_SEED},
            "check": {
                "n": recipe.n_check,
                "seed": CHECK_SEED,
                "accuracy": _accuracy(probe, check),
                "random_encoder_probe_accuracy": _accuracy(random_probe, check),
            },
            "integrated_gradients": ig,
            "integrated_gradients_random_encoder": ig_random,
        },
    )
    _write_card(out / "shapes_encoder.json", card)
    return card


def nt_xent(z: tf.Tensor, temperature: tf.Tensor) -> tf.Tensor:
    """NT-Xent loss of ``(2N, D)`` projections whose rows ``i`` and ``i + N`` pair."""
    import tensorflow as tf

    z = tf.math.l2_normalize(z, axis=1)
    n = tf.shape(z)[0] // 2
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits -= 1e9 * tf.eye(2 * n)  # an embedding is no positive of itself
    labels = tf.concat([tf.range(n, 2 * n), tf.range(n)], axis=0)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    )


def augment(
    images: tf.Tensor,
    boxes: tf.Tensor,
    seeds: tf.Tensor,
    crop_scale: tuple[float, float] = (0.6, 1.0),
) -> tf.Tensor:
    """Random views of ``(N, H, W, 3)`` images, as TensorFlow ops.

    A square crop of side ``crop_scale`` (as a fraction of the image, widened
    where needed so it holds the object's box) resized back, a horizontal flip
    and a transpose (together the eight symmetries of the square), brightness,
    contrast and saturation jitter, and grayscale for one view in five.

    Parameters
    ----------
    images
        ``(N, H, W, 3)`` in ``[0, 1]``.
    boxes
        ``(N, 4)`` object boxes ``(y0, x0, y1, x1)`` as fractions of the image.
    seeds
        ``(2,)`` int32 seed of the stateless random ops.
    crop_scale
        Smallest and largest side of the crop, as a fraction of the image.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    keys = tf.random.experimental.stateless_split(seeds, 8)

    def uniform(index: int, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
        return tf.random.stateless_uniform([n, 1], keys[index], minval=low, maxval=high)

    # A crop that keeps the object: wide enough for its box, placed so the box
    # stays inside.
    extent = tf.maximum(boxes[:, 2:] - boxes[:, :2], 0.0)
    side = tf.maximum(uniform(0, *crop_scale), tf.reduce_max(extent, 1, True) + 0.04)
    side = tf.minimum(side, 1.0)
    low = tf.clip_by_value(boxes[:, 2:] + 0.02 - side, 0.0, 1.0 - side)
    high = tf.clip_by_value(boxes[:, :2] - 0.02, 0.0, 1.0 - side)
    high = tf.maximum(high, low)
    origin = low + tf.random.stateless_uniform([n, 2], keys[1]) * (high - low)
    crop = tf.concat([origin, origin + side], axis=1)
    size = tf.shape(images)[1:3]
    views = tf.image.crop_and_resize(images, crop, tf.range(n), size)

    # The symmetries of the square: a flip and a transpose.
    views = tf.where(uniform(2)[:, :, None, None] < 0.5, views[:, :, ::-1], views)
    views = tf.where(
        uniform(3)[:, :, None, None] < 0.5,
        tf.transpose(views, [0, 2, 1, 3]),
        views,
    )

    # Colour: brightness, contrast, saturation, sometimes grayscale.
    gray = tf.reduce_mean(views, axis=3, keepdims=True)
    saturation = uniform(4, 0.4, 1.6)[:, :, None, None]
    views = gray + (views - gray) * saturation
    mean = tf.reduce_mean(views, axis=[1, 2, 3], keepdims=True)
    contrast = uniform(5, 0.6, 1.4)[:, :, None, None]
    brightness = uniform(6, -0.2, 0.2)[:, :, None, None]
    views = (views - mean) * contrast + mean + brightness
    to_gray = uniform(7)[:, :, None, None] < 0.2
    views = tf.where(to_gray, tf.reduce_mean(views, axis=3, keepdims=True), views)
    views = tf.broadcast_to(views, tf.shape(images))
    return tf.clip_by_value(views, 0.0, 1.0)


def _boxes(masks: np.ndarray) -> np.ndarray:
    """``(N, 4)`` float32 boxes ``(y0, x0, y1, x1)`` of ``(N, H, W)`` masks."""
    rows = np.asarray(masks.any(axis=2))
    cols = np.asarray(masks.any(axis=1))
    size = masks.shape[1]
    y0 = rows.argmax(axis=1)
    y1 = size - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = size - cols[:, ::-1].argmax(axis=1)
    return (np.stack([y0, x0, y1, x1], axis=1) / size).astype(np.float32)


def _fit_linear_probe(
    probe: keras.Model, encoder: keras.Model, data: ShapesData, l2: float
) -> None:
    """Fit the ``logits`` layer of ``probe`` on the frozen ``encoder``.

    Multinomial logistic regression on standardised embeddings; the
    standardisation is folded into the dense layer's kernel and bias.
    """
    from sklearn.linear_model import LogisticRegression

    features = _predict(encoder, data.images)
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-6
    regression = LogisticRegression(C=1.0 / (l2 * len(data)), max_iter=2000)
    regression.fit((features - mean) / scale, data.labels)
    kernel = (regression.coef_ / scale).T
    bias = regression.intercept_ - mean @ kernel
    probe.get_layer("logits").set_weights(
        [kernel.astype(np.float32), bias.astype(np.float32)]
    )


# ------------------------------------------------------------------- shortcut


def _train_shortcut(
    recipe: ImageRecipe, out: Path, seed: int, quick: bool
) -> dict[str, Any]:
    import tensorflow as tf

    started = time.perf_counter()
    model = image_models.build_classifier(
        image_models.build_encoder("shortcut_encoder", seed=seed),
        "shortcut_classifier",
    )
    variables = model.trainable_variables
    optimizer = _optimizer(recipe)

    @tf.function(autograph=False, reduce_retracing=True)
    def step(images: tf.Tensor, labels: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            )
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    def batches() -> Iterator[tuple[np.ndarray, ...]]:
        for index in range(recipe.steps):
            data = shapes(
                recipe.batch_size, seed=_train_seed(seed, 2, index), shortcut=True
            )
            yield data.images, data.labels.astype(np.int32)

    logger.info(
        "shortcut: training a %d-parameter classifier, %d steps of %d images",
        model.count_params(),
        recipe.steps,
        recipe.batch_size,
    )
    losses = _run_steps(step, batches(), recipe.steps, seed)
    train_seconds = time.perf_counter() - started

    with_patch = shapes(recipe.n_eval, seed=EVAL_SEED, shortcut=True)
    shuffled = shapes(recipe.n_eval, seed=EVAL_SEED, shortcut="shuffled")
    no_patch = shapes(recipe.n_eval, seed=EVAL_SEED)
    accuracy = _accuracy(model, with_patch)
    shuffled_accuracy = _accuracy(model, shuffled)
    follows_patch = float(
        np.mean(_predict(model, shuffled.images).argmax(1) == shuffled.patch_labels)
    )
    logger.info(
        "shortcut: accuracy %.3f with the patch, %.3f with it shuffled",
        accuracy,
        shuffled_accuracy,
    )
    check = {
        "n": recipe.n_check,
        "seed": CHECK_SEED,
        "accuracy": _accuracy(model, shapes(recipe.n_check, CHECK_SEED, True)),
        "shuffled_accuracy": _accuracy(
            model, shapes(recipe.n_check, CHECK_SEED, "shuffled")
        ),
    }
    ig = _ig_report(model, with_patch, recipe)
    wall = time.perf_counter() - started

    model.save_weights(out / image_models.SHORTCUT_FILE)
    card = _card(
        model="shortcut_classifier",
        files=[image_models.SHORTCUT_FILE],
        recipe=recipe,
        seed=seed,
        quick=quick,
        parameters=int(model.count_params()),
        train_seconds=train_seconds,
        wall_seconds=wall,
        losses=losses,
        method=(
            "Supervised cross-entropy, end to end, on shapes(shortcut=True): a "
            "6x6 top-left patch whose colour gives the class away."
        ),
        data={
            "generator": "ssxwidgets.demo.shapes(shortcut=True)",
            "train_images": recipe.steps * recipe.batch_size,
            "train_seeds": f">= {_TRAIN_SEED_BASE} (one per step)",
        },
        metrics={
            "accuracy": accuracy,
            "shuffled_accuracy": shuffled_accuracy,
            "shuffled_follows_patch": follows_patch,
            "no_patch_accuracy": _accuracy(model, no_patch),
            "chance": 1.0 / len(CLASS_NAMES),
            "eval": {"n": recipe.n_eval, "seed": EVAL_SEED},
            "check": check,
            "integrated_gradients": ig,
        },
    )
    _write_card(out / "shortcut_classifier.json", card)
    return card


# --------------------------------------------------- integrated gradients


def integrated_gradients(
    model: keras.Model,
    inputs: np.ndarray,
    targets: np.ndarray,
    baselines: np.ndarray,
    n_steps: int = 32,
    batch_size: int = 256,
) -> np.ndarray:
    """Integrated gradients of class logits, by the midpoint rule.

    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", 2017.
    A small stand-alone version for the model cards; the library's method
    lives in ``ssxwidgets.methods``.

    Parameters
    ----------
    model
        Maps ``(N, H, W, C)`` images to ``(N, K)`` logits.
    inputs, baselines
        ``(N, H, W, C)``.
    targets
        ``(N,)`` class index explained for each input.
    n_steps
        Points on the straight path from baseline to input.
    batch_size
        Path points evaluated per model call.

    Returns
    -------
    numpy.ndarray
        ``(N, H, W, C)`` attributions; per image they sum to about
        ``logit(input) - logit(baseline)``.
    """
    import tensorflow as tf

    alphas = ((np.arange(n_steps) + 0.5) / n_steps).astype(np.float32)
    per_call = max(1, batch_size // n_steps)
    attributions = np.empty(inputs.shape, dtype=np.float32)

    @tf.function(autograph=False, reduce_retracing=True)
    def path_gradients(points: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(points)
            logits = model(points, training=False)
            chosen = tf.gather(logits, classes, axis=1, batch_dims=1)
        return tape.gradient(chosen, points)

    for start in range(0, len(inputs), per_call):
        x = inputs[start : start + per_call].astype(np.float32)
        x0 = baselines[start : start + per_call].astype(np.float32)
        k = len(x)
        points = x0[:, None] + alphas[None, :, None, None, None] * (x - x0)[:, None]
        classes = np.repeat(targets[start : start + per_call], n_steps)
        grads = path_gradients(
            tf.constant(points.reshape(k * n_steps, *x.shape[1:])),
            tf.constant(classes.astype(np.int32)),
        ).numpy()
        mean_grad = grads.reshape(k, n_steps, *x.shape[1:]).mean(axis=1)
        attributions[start : start + k] = (x - x0) * mean_grad
    return attributions


def blur_baseline(inputs: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Gaussian-blurred copies of ``(N, H, W, C)`` images (``sigma`` in pixels)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(inputs, sigma=(0, sigma, sigma, 0), mode="nearest")


def ig_max_inside(attributions: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Whether each map's maximum lies inside its mask: ``(N,)`` bool.

    The map is ``|attribution|`` summed over channels, ``(N, H, W)``.
    """
    heat = np.abs(attributions).sum(axis=-1).reshape(len(masks), -1)
    return masks.reshape(len(masks), -1)[np.arange(len(masks)), heat.argmax(axis=1)]


def _ig_report(
    model: keras.Model, data: ShapesData, recipe: ImageRecipe
) -> dict[str, Any]:
    """IG on the first ``n_ig`` images: where the maximum lands, per baseline."""
    count = min(recipe.n_ig, len(data))
    images, labels = data.images[:count], data.labels[:count]
    baselines = {
        "blur": blur_baseline(images, recipe.ig_blur_sigma),
        "mean": np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape),
    }
    report: dict[str, Any] = {
        "n": count,
        "seed": data.seed,
        "n_steps": recipe.ig_steps,
        "target": "true class",
        "map": "|attribution| summed over channels",
        "object_area": float(data.masks[:count].mean()),
    }
    for name, baseline in baselines.items():
        attributions = integrated_gradients(
            model, images, labels, np.ascontiguousarray(baseline), recipe.ig_steps
        )
        inside = ig_max_inside(attributions, data.masks[:count])
        entry = {"max_in_object": float(inside.mean())}
        if data.patch_masks is not None:
            in_patch = ig_max_inside(attributions, data.patch_masks[:count])
            entry["max_in_patch"] = float(in_patch.mean())
        report[f"baseline_{name}"] = entry
    logger.info("integrated gradients on %s: %s", model.name, report)
    return report


# -------------------------------------------------------------------- shared


def _configure_tensorflow(seed: int) -> None:
    """Threads for a small shared machine, and seeds for reproducibility."""
    import keras
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    try:
        tf.config.threading.set_intra_op_parallelism_threads(max(1, cores))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started: keep its settings
        logger.info("TensorFlow threads were already configured; keeping them")
    keras.utils.set_random_seed(seed)


def _optimizer(recipe: ImageRecipe) -> keras.optimizers.Optimizer:
    import keras

    decay_steps = max(1, recipe.steps - recipe.warmup_steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps,
        warmup_target=recipe.learning_rate,
        warmup_steps=recipe.warmup_steps,
        alpha=0.02,
    )
    return keras.optimizers.AdamW(schedule, weight_decay=recipe.weight_decay)


def _run_steps(
    step: Callable[..., Any],
    batches: Iterator[tuple[np.ndarray, ...]],
    n_steps: int,
    seed: int,
) -> list[float]:
    """Run ``step`` on every batch, drawing the next batch in a thread meanwhile.

    Returns the loss every ``n_steps // 20`` steps (at least every step).
    """
    import tensorflow as tf

    every = max(1, n_steps // 20)
    losses: list[float] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: Future[tuple[np.ndarray, ...]] = pool.submit(next, batches)
        for index in range(n_steps):
            arrays = pending.result()
            if index + 1 < n_steps:
                pending = pool.submit(next, batches)
            seeds = tf.constant([seed, index], dtype=tf.int32)
            loss = step(*[tf.constant(a) for a in arrays], seeds)
            if (index + 1) % every == 0 or index + 1 == n_steps:
                losses.append(round(float(loss), 4))
                logger.info(
                    "step %d/%d loss %.4f (%.1f s)",
                    index + 1,
                    n_steps,
                    losses[-1],
                    time.perf_counter() - started,
                )
    return losses


def _train_seed(seed: int, stream: int, index: int) -> int:
    """Seed of one batch of training data; always >= ``_TRAIN_SEED_BASE``."""
    return _TRAIN_SEED_BASE + seed * 10_000_000 + stream * 1_000_000 + index


def _predict(
    model: keras.Model, images: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    outputs = [
        np.asarray(model(images[start : start + batch_size], training=False))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs)


def _accuracy(model: keras.Model, data: ShapesData) -> float:
    predictions = _predict(model, data.images).argmax(axis=1)
    return float(np.mean(predictions == data.labels))


def _card(
    *,
    model: str,
    files: list[str],
    recipe: ImageRecipe,
    seed: int,
    quick: bool,
    parameters: int,
    train_seconds: float,
    wall_seconds: float,
    losses: list[float],
    method: str,
    data: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    return {
        "model": model,
        "files": files,
        "classes": list(CLASS_NAMES),
        "input": f"(N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3) float32 in [0, 1]",
        "output": "(N, 6) class logits, no softmax",
        "method": method,
        "architecture": {
            "builder": "ssxwidgets.demo.image_models.build_encoder",
            "parameters": parameters,
            "last_conv": image_models.LAST_CONV,
            "normalisation": "GroupNormalization (no running statistics)",
        },
        "recipe": asdict(recipe),
        "data": data,
        "seed": seed,
        "quick": quick,
        "command": "python -m ssxwidgets.demo.train "
        + ("shortcut" if model == "shortcut_classifier" else "shapes"),
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "losses": losses,
        "metrics": metrics,
        "versions": {
            "ssxwidgets": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }


def _write_card(path: Path, card: dict[str, Any]) -> None:
    """Write the card as JSON, and beside it a short Markdown summary."""
    path.write_text(json.dumps(card, indent=2) + "\n")
    path.with_suffix(".md").write_text(_card_markdown(card))
    logger.info("wrote %s", path)


def _card_markdown(card: dict[str, Any]) -> str:
    metrics = card["metrics"]
    rows = [
        (name, value)
        for name, value in metrics.items()
        if isinstance(value, float) and name != "chance"
    ]
    ig = metrics["integrated_gradients"]
    for baseline in ("blur", "mean"):
        for key, value in ig[f"baseline_{baseline}"].items():
            rows.append((f"IG {key} ({baseline} baseline)", value))
    lines = [
        f"# Model card: {card['model']}",
        "",
        card["method"],
        "",
        f"Files: {', '.join(f'`{name}`' for name in card['files'])}. "
        f"Input {card['input']}. Parameters: {card['architecture']['parameters']}.",
        "",
        f"Measured on {metrics['eval']['n']} fresh images (seed "
        f"{metrics['eval']['seed']}, never used in training); IG on the first "
        f"{ig['n']} of them, {ig['n_steps']} steps, target the true class; the "
        f"object covers {ig['object_area']:.1%} of the image (the chance rate of "
        "a maximum inside it). Chance accuracy: "
        f"{metrics['chance']:.1%}.",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {name.replace('_', ' ')} | {value:.3f} |" for name, value in rows),
        "",
        f"Trained in {card['train_seconds']:.0f} s ({card['wall_seconds']:.0f} s "
        f"with evaluation) on {card['machine']}, seed {card['seed']}: "
        f"`{card['command']}`. Versions: "
        + ", ".join(f"{k} {v}" for k, v in card["versions"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)
