"""Train the tabular demo models and write their weights and model cards.

Usage::

    python -m ssxwidgets.demo.train medical            # ~20 s on 2 cores
    python -m ssxwidgets.demo.train credit --seed 0
    python -m ssxwidgets.demo.train credit --quick --out /tmp/x   # seconds

``medical`` pretrains the breast-cancer encoder self-supervised, SCARF style
(D. Bahri, H. Jiang, Y. Tay and D. Metzler, "SCARF: Self-Supervised
Contrastive Learning using Random Feature Corruption", ICLR 2022): each row's
positive view replaces a random 60 % of its features by values drawn from
those features' empirical marginals (the same column of another random
training row), and an NT-Xent loss pulls the two views together. A linear
probe (L2 logistic regression, strength chosen by 5-fold cross-validation on
the training split) is then fitted on the frozen embeddings, and the same
probe is fitted on a randomly initialised encoder of the same architecture; a
plain MLP of the probe's architecture is trained end to end on the labels for
comparison. ``credit`` trains a small L2-penalised MLP on
``credit(20000, seed)`` and tests it on ``credit(10000, seed + 1)``.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._log import logger
from .._version import __version__
from . import table_models as tm
from .tables import CREDIT_DRIVERS, CreditData, MedicalData, breast_cancer, credit

__all__ = ["CreditRecipe", "MedicalRecipe", "train"]

WEIGHTS = Path(__file__).with_name("weights")


@dataclass(frozen=True)
class MedicalRecipe:
    """Hyper-parameters of the medical run; ``quick`` shrinks the step counts."""

    ssl_epochs: int = 400
    ssl_batch_size: int = 128
    ssl_learning_rate: float = 1e-3
    temperature: float = 0.5
    corruption_rate: float = 0.6
    projection_dims: tuple[int, ...] = (128, 64)
    probe: str = "L2 logistic regression on standardised embeddings"
    probe_cs: tuple[float, ...] = tuple(np.logspace(-3, 2, 11).round(5).tolist())
    """Inverse L2 strengths the probes choose from by 5-fold CV log loss."""
    classifier_epochs: int = 20
    classifier_batch_size: int = 32
    classifier_learning_rate: float = 1e-3
    knn_k: int = 5


@dataclass(frozen=True)
class CreditRecipe:
    """Hyper-parameters of the credit run; ``quick`` shrinks the data and epochs."""

    n_train: int = 20_000
    n_test: int = 10_000
    epochs: int = 25
    batch_size: int = 256
    learning_rate: float = 1e-3
    l2: float = 3e-3


def train(name: str, out: Path, seed: int = 0, quick: bool = False) -> dict[str, Any]:
    """Train the models of ``name`` and write weights and cards into ``out``.

    Parameters
    ----------
    name
        ``"medical"`` (encoder, probe, random-encoder probe, plain classifier)
        or ``"credit"``.
    out
        Folder for ``<model>.weights.h5`` and ``<model>.json``. A quick run
        never writes into the shipped weights folder; it picks a scratch
        folder instead.
    seed
        Seeds weight initialisation, shuffling, corruption and the credit data.
    quick
        Run a few steps only (seconds): to check the script, not the model.

    Returns
    -------
    dict
        The model cards written, by model name.
    """
    trainers: dict[str, Callable[[Path, int, bool], dict[str, Any]]] = {
        "medical": _train_medical,
        "credit": _train_credit,
    }
    if name not in trainers:
        raise ValueError(f"expected name 'medical' or 'credit', got {name!r}")

    out = Path(out)
    if quick and out.resolve() == WEIGHTS.resolve():
        out = Path(tempfile.mkdtemp(prefix=f"ssx-{name}-quick-"))
        logger.info("quick run: writing into %s, not the shipped weights", out)
    out.mkdir(parents=True, exist_ok=True)
    return trainers[name](out, seed, quick)


# --------------------------------------------------------------------------- medical


def _train_medical(out: Path, seed: int, quick: bool) -> dict[str, Any]:
    """Train and score the medical encoder, probes and classifier."""
    import keras

    recipe = MedicalRecipe()
    if quick:
        recipe = replace(recipe, ssl_epochs=2, classifier_epochs=1, probe_cs=(1.0,))
    data = breast_cancer()
    data_card = {
        "source": "sklearn.datasets.load_breast_cancer (Wisconsin diagnostic)",
        "split": "ssxwidgets.demo.breast_cancer(): fixed stratified, 25 % test",
        "n_train": len(data.y_train),
        "n_test": len(data.y_test),
        "labels": "1 = malignant, 0 = benign",
    }

    # Self-supervised encoder
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    encoder = tm.build_medical_encoder()
    encoder.get_layer("standardise").adapt(data.x_train)
    ssl_loss = _pretrain_scarf(encoder, data.x_train, recipe, seed)
    probe = tm.build_medical_probe(encoder)
    probe_c = _fit_linear_probe(probe, encoder, data, recipe.probe_cs, seed)
    ssl_seconds = time.perf_counter() - started

    # The same probe on an untrained encoder of the same architecture
    started = time.perf_counter()
    keras.utils.set_random_seed(seed + 1)
    random_encoder = tm.build_medical_encoder()
    random_encoder.get_layer("standardise").adapt(data.x_train)
    random_probe = tm.build_medical_probe(random_encoder, name=tm.MEDICAL_RANDOM_PROBE)
    random_probe_c = _fit_linear_probe(
        random_probe, random_encoder, data, recipe.probe_cs, seed
    )
    random_seconds = time.perf_counter() - started

    # Plain supervised classifier
    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    classifier = tm.build_medical_classifier()
    classifier.get_layer("standardise").adapt(data.x_train)
    classifier.compile(
        optimizer=keras.optimizers.Adam(recipe.classifier_learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    classifier.fit(
        data.x_train,
        data.y_train,
        epochs=recipe.classifier_epochs,
        batch_size=recipe.classifier_batch_size,
        shuffle=True,
        verbose=0,
    )
    classifier_seconds = time.perf_counter() - started

    scores = {
        tm.MEDICAL_PROBE: medical_scores(probe, data),
        tm.MEDICAL_CLASSIFIER: medical_scores(classifier, data),
        tm.MEDICAL_RANDOM_PROBE: medical_scores(random_probe, data),
    }
    comparison = {name: dict(s) for name, s in scores.items()}
    encoder_scores = {
        "test_knn_accuracy": knn_accuracy(encoder, data, recipe.knn_k),
        "random_encoder_test_knn_accuracy": knn_accuracy(
            random_encoder, data, recipe.knn_k
        ),
        "final_ssl_loss": round(ssl_loss, 4),
    }
    logger.info("medical scores: %s; encoder: %s", comparison, encoder_scores)

    common = {
        "data": data_card,
        "seed": seed,
        "quick": quick,
        "recipe": asdict(recipe),
        "command": f"python -m ssxwidgets.demo.train medical --seed {seed}",
        "versions": _versions(),
    }
    cards = {
        tm.MEDICAL_ENCODER: {
            "description": "SCARF-style contrastive encoder, (N, 30) raw -> (N, 64)",
            "loader": "ssxwidgets.demo.load_medical_encoder",
            "train_seconds": round(ssl_seconds, 1),
            "metrics": encoder_scores,
            "comparison": comparison,
        },
        tm.MEDICAL_PROBE: {
            "description": "encoder + linear probe, (N, 30) raw -> (N, 2) logits "
            "(benign, malignant)",
            "loader": "ssxwidgets.demo.load_medical_probe",
            "train_seconds": round(ssl_seconds, 1),
            "probe_c": probe_c,
            "metrics": scores[tm.MEDICAL_PROBE],
            "comparison": comparison,
        },
        tm.MEDICAL_RANDOM_PROBE: {
            "description": "linear probe on a randomly initialised encoder, "
            "(N, 30) raw -> (N, 2) logits (benign, malignant)",
            "loader": "ssxwidgets.demo.table_models.load_medical_random_probe",
            "train_seconds": round(random_seconds, 1),
            "probe_c": random_probe_c,
            "metrics": scores[tm.MEDICAL_RANDOM_PROBE],
            "comparison": comparison,
        },
        tm.MEDICAL_CLASSIFIER: {
            "description": "plain supervised MLP, (N, 30) raw -> (N, 2) logits "
            "(benign, malignant)",
            "loader": "ssxwidgets.demo.load_medical_classifier",
            "train_seconds": round(classifier_seconds, 1),
            "metrics": scores[tm.MEDICAL_CLASSIFIER],
            "comparison": comparison,
        },
    }
    models = {
        tm.MEDICAL_ENCODER: encoder,
        tm.MEDICAL_PROBE: probe,
        tm.MEDICAL_RANDOM_PROBE: random_probe,
        tm.MEDICAL_CLASSIFIER: classifier,
    }
    for name, model in models.items():
        cards[name] = _write(out, name, model, {**cards[name], **common})
    return cards


def _pretrain_scarf(
    encoder: Any, x_train: NDArray[np.float32], recipe: MedicalRecipe, seed: int
) -> float:
    """Train ``encoder`` in place with SCARF corruption and NT-Xent; final loss."""
    import keras
    import tensorflow as tf
    from keras import layers

    head_in = keras.Input((tm.MEDICAL_EMBEDDING_DIM,))
    h = head_in
    for i, width in enumerate(recipe.projection_dims):
        last = i == len(recipe.projection_dims) - 1
        h = layers.Dense(width, activation=None if last else "relu")(h)
    head = keras.Model(head_in, h, name="projection_head")
    variables = encoder.trainable_variables + head.trainable_variables
    optimizer = keras.optimizers.Adam(recipe.ssl_learning_rate)
    batch = min(recipe.ssl_batch_size, len(x_train))
    spec = tf.TensorSpec((batch, x_train.shape[1]), tf.float32)

    @tf.function(input_signature=[spec, spec])
    def step(anchor: tf.Tensor, positive: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            z1 = head(encoder(anchor, training=True), training=True)
            z2 = head(encoder(positive, training=True), training=True)
            loss = nt_xent(z1, z2, recipe.temperature)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    rng = np.random.default_rng(seed)
    losses: list[float] = []
    for epoch in range(recipe.ssl_epochs):
        order = rng.permutation(len(x_train))
        epoch_losses = []
        for start in range(0, len(order) - batch + 1, batch):
            anchor = x_train[order[start : start + batch]]
            positive = corrupt(anchor, x_train, recipe.corruption_rate, rng)
            epoch_losses.append(float(step(anchor, positive)))
        losses.append(float(np.mean(epoch_losses)))
        if (epoch + 1) % 100 == 0:
            logger.info("scarf epoch %d: loss %.4f", epoch + 1, losses[-1])
    return float(np.mean(losses[-10:]))


def corrupt(
    rows: NDArray[np.float32],
    pool: NDArray[np.float32],
    rate: float,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Replace a random ``rate`` of each row's features with marginal draws.

    Parameters
    ----------
    rows
        ``(B, F)`` rows to corrupt.
    pool
        ``(N, F)`` rows whose columns are the empirical marginals.
    rate
        Probability that a feature is replaced.
    rng
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        ``(B, F)``: entry ``(b, f)`` is either ``rows[b, f]`` or ``pool[i, f]``
        for a uniformly random ``i``, drawn independently per entry.
    """
    replace_mask = rng.random(rows.shape) < rate
    donors = rng.integers(0, len(pool), size=rows.shape)
    draws = pool[donors, np.arange(rows.shape[1])]
    return np.where(replace_mask, draws, rows).astype(np.float32)


def nt_xent(z1: Any, z2: Any, temperature: float) -> Any:
    """NT-Xent loss of two ``(B, D)`` batches of projections, paired by row.

    T. Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations", ICML 2020: each of the ``2B`` projections must pick its
    partner out of the other ``2B - 1`` by cosine similarity over
    ``temperature``.
    """
    import tensorflow as tf

    z = tf.math.l2_normalize(tf.concat([z1, z2], axis=0), axis=1)
    n = tf.shape(z1)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits -= 1e9 * tf.eye(2 * n)
    labels = tf.concat([tf.range(n, 2 * n), tf.range(0, n)], axis=0)
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


def _fit_linear_probe(
    probe: Any,
    encoder: Any,
    data: MedicalData,
    cs: tuple[float, ...],
    seed: int,
) -> float:
    """Fit ``probe``'s ``logits`` layer on ``encoder``'s frozen embeddings.

    An L2 logistic regression on standardised embeddings, its inverse strength
    chosen from ``cs`` by the log loss of a stratified 5-fold cross-validation
    on the training split. The standardisation is folded into the layer, and
    the binary weights ``w`` become the logits ``(-w/2, w/2)``, so the softmax
    reproduces the regression's probabilities. Returns the chosen ``C``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    embeddings = _outputs(encoder, data.x_train).astype(np.float64)
    mean = embeddings.mean(axis=0)
    std = embeddings.std(axis=0) + 1e-8
    features = (embeddings - mean) / std
    best_c = float(cs[0])
    if len(cs) > 1:
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        cv_loss = [
            -cross_val_score(
                LogisticRegression(C=c, max_iter=10_000),
                features,
                data.y_train,
                cv=folds,
                scoring="neg_log_loss",
            ).mean()
            for c in cs
        ]
        best_c = float(cs[int(np.argmin(cv_loss))])
    regression = LogisticRegression(C=best_c, max_iter=10_000)
    regression.fit(features, data.y_train)

    w = regression.coef_[0] / std
    b = regression.intercept_[0] - float(np.sum(w * mean))
    kernel = np.stack([-w / 2, w / 2], axis=1).astype(np.float32)
    bias = np.array([-b / 2, b / 2], dtype=np.float32)
    probe.get_layer("logits").set_weights([kernel, bias])
    return best_c


def medical_scores(model: Any, data: MedicalData) -> dict[str, float]:
    """Test accuracy and ROC AUC (malignant vs benign) of a logits model."""
    from sklearn.metrics import roc_auc_score

    logits = _outputs(model, data.x_test)
    margin = logits[:, 1] - logits[:, 0]
    accuracy = float(np.mean((margin > 0) == (data.y_test == 1)))
    return {
        "test_accuracy": round(accuracy, 4),
        "test_auc": round(float(roc_auc_score(data.y_test, margin)), 4),
    }


def knn_accuracy(encoder: Any, data: MedicalData, k: int) -> float:
    """Test accuracy of a ``k``-nearest-neighbour vote in cosine embedding space."""
    train = _outputs(encoder, data.x_train)
    test = _outputs(encoder, data.x_test)
    train /= np.linalg.norm(train, axis=1, keepdims=True) + 1e-12
    test /= np.linalg.norm(test, axis=1, keepdims=True) + 1e-12
    nearest = np.argsort(-test @ train.T, axis=1)[:, :k]
    votes = data.y_train[nearest].mean(axis=1)
    return round(float(np.mean((votes > 0.5) == (data.y_test == 1))), 4)


# --------------------------------------------------------------------------- credit


def _train_credit(out: Path, seed: int, quick: bool) -> dict[str, Any]:
    """Train and score the credit-default model."""
    import keras

    recipe = CreditRecipe()
    if quick:
        recipe = replace(recipe, n_train=512, n_test=512, epochs=1)
    train_data = credit(recipe.n_train, seed=seed)
    test_data = credit(recipe.n_test, seed=seed + 1)

    started = time.perf_counter()
    keras.utils.set_random_seed(seed)
    model = tm.build_credit_model(l2=recipe.l2)
    model.get_layer("standardise").adapt(train_data.data)
    model.compile(
        optimizer=keras.optimizers.Adam(recipe.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
    )
    model.fit(
        train_data.data,
        train_data.target,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        shuffle=True,
        verbose=0,
    )
    seconds = time.perf_counter() - started

    scores = credit_scores(model, test_data)
    logger.info("credit scores: %s", scores)
    card = {
        "description": "credit-default MLP, (N, 11) raw -> (N, 1) P(default)",
        "loader": "ssxwidgets.demo.load_credit_model",
        "data": {
            "train": f"ssxwidgets.demo.credit({recipe.n_train}, seed={seed})",
            "test": f"ssxwidgets.demo.credit({recipe.n_test}, seed={seed + 1})",
            "train_default_rate": round(float(train_data.target.mean()), 4),
            "drivers": list(CREDIT_DRIVERS),
            "true_log_odds": "-4.2 + 5.5 debt_to_income + 2.5 credit_utilisation "
            "+ 0.9 prior_defaults - 1.0 ln(income / 50000)",
        },
        "seed": seed,
        "quick": quick,
        "recipe": asdict(recipe),
        "command": f"python -m ssxwidgets.demo.train credit --seed {seed}",
        "train_seconds": round(seconds, 1),
        "metrics": scores,
        "versions": _versions(),
    }
    return {tm.CREDIT_MODEL: _write(out, tm.CREDIT_MODEL, model, card)}


def credit_scores(model: Any, test: CreditData) -> dict[str, float]:
    """Score a P(default) model on ``test`` against the true probability.

    Returns test ROC AUC and log loss of the model and of the true
    probability (the best any model can do on these labels), and the mean
    predicted against the observed default rate.
    """
    from sklearn.metrics import log_loss, roc_auc_score

    predicted = _outputs(model, test.data)[:, 0].astype(np.float64)
    predicted = np.clip(predicted, 1e-7, 1 - 1e-7)
    return {
        "test_auc": round(float(roc_auc_score(test.target, predicted)), 4),
        "true_probability_test_auc": round(
            float(roc_auc_score(test.target, test.probability)), 4
        ),
        "test_log_loss": round(float(log_loss(test.target, predicted)), 4),
        "true_probability_test_log_loss": round(
            float(log_loss(test.target, test.probability)), 4
        ),
        "test_mean_predicted": round(float(predicted.mean()), 4),
        "test_default_rate": round(float(test.target.mean()), 4),
    }


# --------------------------------------------------------------------------- cards


def _write(out: Path, name: str, model: Any, card: dict[str, Any]) -> dict[str, Any]:
    """Save ``model``'s weights and its card into ``out``; return the card."""
    import keras

    if getattr(model, "optimizer", None) is not None:
        # Ship the weights alone, without the optimiser's moments.
        plain = keras.Model.from_config(model.get_config())
        plain.set_weights(model.get_weights())
        model = plain
    weights = out / f"{name}.weights.h5"
    model.save_weights(weights)
    card = {"model": name, "weights": weights.name, **card}
    (out / f"{name}.json").write_text(
        json.dumps(card, indent=2) + "\n", encoding="utf-8"
    )
    logger.info("wrote %s and %s.json", weights, name)
    return card


def _outputs(model: Any, inputs: NDArray[np.float32]) -> NDArray[np.float32]:
    """``model``'s outputs on ``inputs`` in one eager call (tables are small)."""
    outputs = model(inputs, training=False)
    if hasattr(outputs, "numpy"):  # TensorFlow's tensors; others convert directly
        outputs = outputs.numpy()
    return np.array(outputs, dtype=np.float32)


def _versions() -> dict[str, str]:
    """Versions of everything that shaped the weights."""
    import keras
    import sklearn
    import tensorflow as tf

    return {
        "ssxwidgets": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "scikit-learn": sklearn.__version__,
    }
