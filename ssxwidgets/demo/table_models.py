"""Tabular demo models: their architectures, built in code, and their loaders.

Usage::

    from ssxwidgets import demo
    probe = demo.load_medical_probe()      # raw (N, 30) features -> (N, 2) logits
    encoder = demo.load_medical_encoder()  # raw (N, 30) features -> (N, 64)
    model = demo.load_credit_model()       # raw (N, 11) features -> (N, 1) P(default)

Every model takes raw features, in the units of :func:`~.tables.breast_cancer`
or :func:`~.tables.credit`, and standardises them itself with a first
``Normalization`` layer (named ``"standardise"``) adapted on the training
rows. All are Keras functional models with no nested sub-models, so every
layer can be tapped by name. The weights ship in ``ssxwidgets/demo/weights``,
each beside a model card (``<name>.json``) recording how it was trained and
what it scores; ``python -m ssxwidgets.demo.train {medical,credit}`` rebuilds
them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .tables import CREDIT_FEATURES, MEDICAL_CLASS_NAMES

if TYPE_CHECKING:
    import keras

__all__ = [
    "CREDIT_MODEL",
    "MEDICAL_CLASSIFIER",
    "MEDICAL_ENCODER",
    "MEDICAL_PROBE",
    "MEDICAL_RANDOM_PROBE",
    "build_credit_model",
    "build_medical_classifier",
    "build_medical_encoder",
    "build_medical_probe",
    "load_credit_model",
    "load_medical_classifier",
    "load_medical_encoder",
    "load_medical_probe",
    "load_medical_random_probe",
    "model_card",
]

WEIGHTS = Path(__file__).with_name("weights")

MEDICAL_ENCODER = "medical_encoder"
MEDICAL_PROBE = "medical_probe"
MEDICAL_CLASSIFIER = "medical_classifier"
MEDICAL_RANDOM_PROBE = "medical_random_probe"
CREDIT_MODEL = "credit_model"

MEDICAL_N_FEATURES = 30
MEDICAL_HIDDEN = 128
MEDICAL_EMBEDDING_DIM = 64
CREDIT_HIDDEN = (64, 32)

PathLike = str | os.PathLike[str]


def build_medical_encoder(name: str = MEDICAL_ENCODER) -> keras.Model:
    """Build the tabular encoder: raw ``(N, 30)`` features to ``(N, 64)``.

    ``standardise`` (Normalization) → ``dense_1`` (128, ReLU) → ``dense_2``
    (128, ReLU) → ``embedding`` (64, linear). Freshly initialised; the
    ``standardise`` layer holds mean 0 and variance 1 until adapted or loaded.
    """
    import keras
    from keras import layers

    inputs = keras.Input((MEDICAL_N_FEATURES,), name="features")
    x = layers.Normalization(axis=-1, name="standardise")(inputs)
    x = layers.Dense(MEDICAL_HIDDEN, activation="relu", name="dense_1")(x)
    x = layers.Dense(MEDICAL_HIDDEN, activation="relu", name="dense_2")(x)
    embedding = layers.Dense(MEDICAL_EMBEDDING_DIM, name="embedding")(x)
    return keras.Model(inputs, embedding, name=name)


def build_medical_probe(
    encoder: keras.Model | None = None, name: str = MEDICAL_PROBE
) -> keras.Model:
    """Build encoder + linear probe as one flat model: ``(N, 30)`` to ``(N, 2)``.

    Parameters
    ----------
    encoder
        A model from :func:`build_medical_encoder`; its layers are shared, not
        copied. A fresh one is built when omitted.
    name
        The model's name.

    Returns
    -------
    keras.Model
        Outputs class logits (benign, malignant) from a final ``logits`` Dense
        layer on the encoder's ``embedding``.
    """
    import keras
    from keras import layers

    if encoder is None:
        encoder = build_medical_encoder()
    logits = layers.Dense(2, name="logits")(encoder.output)
    return keras.Model(encoder.input, logits, name=name)


def build_medical_classifier() -> keras.Model:
    """Build the plain supervised classifier: ``(N, 30)`` raw to ``(N, 2)`` logits.

    The probe's architecture (encoder MLP then a 2-way Dense), trained end to
    end on the labels instead of self-supervised, for comparison.
    """
    encoder = build_medical_encoder(name=f"{MEDICAL_CLASSIFIER}_body")
    return build_medical_probe(encoder, name=MEDICAL_CLASSIFIER)


def build_credit_model(l2: float = 0.0) -> keras.Model:
    """Build the credit model: raw ``(N, 11)`` applicants to ``(N, 1)`` P(default).

    ``standardise`` (Normalization) → ``dense_1`` (64, ReLU) → ``dense_2``
    (32, ReLU) → ``default_probability`` (1, sigmoid).

    Parameters
    ----------
    l2
        L2 penalty on the hidden kernels, for training; it changes no weight
        and no output, so loaders leave it at 0.
    """
    import keras
    from keras import layers

    regularizer = keras.regularizers.L2(l2) if l2 else None
    inputs = keras.Input((len(CREDIT_FEATURES),), name="features")
    x = layers.Normalization(axis=-1, name="standardise")(inputs)
    for i, width in enumerate(CREDIT_HIDDEN, start=1):
        x = layers.Dense(
            width, activation="relu", kernel_regularizer=regularizer, name=f"dense_{i}"
        )(x)
    probability = layers.Dense(1, activation="sigmoid", name="default_probability")(x)
    return keras.Model(inputs, probability, name=CREDIT_MODEL)


def load_medical_encoder(weights_dir: PathLike | None = None) -> keras.Model:
    """Load the self-supervised breast-cancer encoder (SCARF-style contrastive).

    Parameters
    ----------
    weights_dir
        Folder holding ``medical_encoder.weights.h5``; the shipped weights when
        omitted.

    Returns
    -------
    keras.Model
        Raw ``(N, 30)`` features (see :func:`~.tables.breast_cancer`) to
        ``(N, 64)`` embeddings. Trained without labels on the training split.
    """
    return _load(build_medical_encoder(), MEDICAL_ENCODER, weights_dir)


def load_medical_probe(weights_dir: PathLike | None = None) -> keras.Model:
    """Load the self-supervised encoder with its linear probe, as one model.

    Parameters
    ----------
    weights_dir
        Folder holding ``medical_probe.weights.h5``; the shipped weights when
        omitted.

    Returns
    -------
    keras.Model
        Raw ``(N, 30)`` features to ``(N, 2)`` logits, index 0 = benign,
        1 = malignant. The encoder part is identical to
        :func:`load_medical_encoder`; only the ``logits`` layer was fitted on
        labels, as a logistic regression, so the two logits are mirror images
        (``logits[:, 0] == -logits[:, 1]``).
    """
    model = _load(build_medical_probe(), MEDICAL_PROBE, weights_dir)
    model.class_names = MEDICAL_CLASS_NAMES  # read by ssx.adapt for labels
    return model


def load_medical_random_probe(weights_dir: PathLike | None = None) -> keras.Model:
    """Load a linear probe on a randomly initialised (untrained) encoder.

    The baseline a self-supervised encoder has to beat, and a reference for
    randomisation sanity checks of explanations.

    Parameters
    ----------
    weights_dir
        Folder holding ``medical_random_probe.weights.h5``; the shipped weights
        when omitted.

    Returns
    -------
    keras.Model
        Raw ``(N, 30)`` features to ``(N, 2)`` logits (benign, malignant).
    """
    model = build_medical_probe(name=MEDICAL_RANDOM_PROBE)
    return _load(model, MEDICAL_RANDOM_PROBE, weights_dir)


def load_medical_classifier(weights_dir: PathLike | None = None) -> keras.Model:
    """Load the plain supervised breast-cancer classifier.

    Parameters
    ----------
    weights_dir
        Folder holding ``medical_classifier.weights.h5``; the shipped weights
        when omitted.

    Returns
    -------
    keras.Model
        Raw ``(N, 30)`` features to ``(N, 2)`` logits (benign, malignant),
        the probe's architecture trained end to end on the labels.
    """
    model = _load(build_medical_classifier(), MEDICAL_CLASSIFIER, weights_dir)
    model.class_names = MEDICAL_CLASS_NAMES
    return model


def load_credit_model(weights_dir: PathLike | None = None) -> keras.Model:
    """Load the credit-default model trained on :func:`~.tables.credit` data.

    Parameters
    ----------
    weights_dir
        Folder holding ``credit_model.weights.h5``; the shipped weights when
        omitted.

    Returns
    -------
    keras.Model
        Raw ``(N, 11)`` applicants, columns in
        :data:`~.tables.CREDIT_FEATURES` order, to ``(N, 1)`` probability of
        default (sigmoid output).
    """
    model = _load(build_credit_model(), CREDIT_MODEL, weights_dir)
    model.class_names = ("probability of default",)
    return model


def model_card(name: str, weights_dir: PathLike | None = None) -> dict[str, Any]:
    """Return the model card of a demo model: recipe, data, seed, scores.

    Parameters
    ----------
    name
        ``"medical_encoder"``, ``"medical_probe"``, ``"medical_classifier"``,
        ``"medical_random_probe"`` or ``"credit_model"``.
    weights_dir
        Folder holding ``<name>.json``; the shipped cards when omitted.
    """
    path = Path(weights_dir or WEIGHTS) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"expected a model card at {path}; run "
            f"`python -m ssxwidgets.demo.train {_trainer(name)}` to make it"
        )
    card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return card


def _load(model: keras.Model, name: str, weights_dir: PathLike | None) -> keras.Model:
    """Load ``<weights_dir>/<name>.weights.h5`` into ``model`` and return it."""
    path = Path(weights_dir or WEIGHTS) / f"{name}.weights.h5"
    if not path.is_file():
        raise FileNotFoundError(
            f"expected weights at {path}; run "
            f"`python -m ssxwidgets.demo.train {_trainer(name)}` to make them"
        )
    model.load_weights(path)
    return model


def _trainer(name: str) -> str:
    """The ``train`` command argument that produces model ``name``."""
    return name.split("_", 1)[0]
