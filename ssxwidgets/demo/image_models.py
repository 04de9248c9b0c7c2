"""The demo's image models: built here in code, weights loaded from the package.

Every model is a Keras functional model over ``(N, 64, 64, 3)`` images in
``[0, 1]`` whose layers can be tapped: the convolutional trunk ends in a layer
named ``LAST_CONV`` with an ``(8, 8, 128)`` spatial output (for Grad-CAM),
followed by global average pooling and a 128-d ``embedding`` layer.

Usage::

    encoder = load_encoder()              # image -> 128-d embedding
    probe = load_probe()                  # image -> class logits (encoder + probe)
    clever_hans = load_shortcut_classifier()
    baseline = load_random_encoder()      # same architecture, untrained

The weights are trained by ``python -m ssxwidgets.demo.train shapes`` and
``... shortcut``; each file has a model card (``.json``) beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .shapes import CLASS_NAMES, IMAGE_SIZE

if TYPE_CHECKING:
    import keras

__all__ = [
    "EMBEDDING_DIM",
    "LAST_CONV",
    "WEIGHTS_DIR",
    "build_classifier",
    "build_encoder",
    "load_encoder",
    "load_probe",
    "load_random_encoder",
    "load_shortcut_classifier",
]

WEIGHTS_DIR = Path(__file__).with_name("weights")
EMBEDDING_DIM = 128
LAST_CONV = "last_conv"
RANDOM_ENCODER_SEED = 1234

ENCODER_FILE = "shapes_encoder.weights.h5"
PROBE_FILE = "shapes_probe.weights.h5"
RANDOM_ENCODER_FILE = "shapes_random_encoder.weights.h5"
SHORTCUT_FILE = "shortcut_classifier.weights.h5"

# (filters, kernel, stride) of the trunk, the last entry being LAST_CONV.
_TRUNK = (
    (24, 5, 2),
    (48, 3, 2),
    (64, 3, 1),
    (128, 3, 2),
    (128, 3, 1),
)
_GROUPS = 8


def build_encoder(name: str = "shapes_encoder", seed: int | None = None) -> keras.Model:
    """Build the encoder: ``(N, 64, 64, 3)`` images to ``(N, 128)`` embeddings.

    A small ConvNet (about 280k parameters): convolutions with group
    normalisation (no running statistics, so training and inference agree),
    a last convolution ``LAST_CONV`` with an ``(8, 8, 128)`` output, global
    average pooling and a linear ``embedding`` layer.

    Parameters
    ----------
    name
        The model's name.
    seed
        Seed of the weight initialisers; ``None`` draws them at random.
    """
    import keras

    def init(offset: int) -> keras.initializers.Initializer:
        return keras.initializers.HeNormal(seed=None if seed is None else seed + offset)

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="centre")(inputs)
    for index, (filters, kernel, stride) in enumerate(_TRUNK):
        last = index == len(_TRUNK) - 1
        layer_name = LAST_CONV if last else f"conv{index + 1}"
        x = keras.layers.Conv2D(
            filters,
            kernel,
            strides=stride,
            padding="same",
            use_bias=last,
            activation="relu" if last else None,
            kernel_initializer=init(index),
            name=layer_name,
        )(x)
        if not last:
            x = keras.layers.GroupNormalization(_GROUPS, name=f"norm{index + 1}")(x)
            x = keras.layers.Activation("relu", name=f"relu{index + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(
        EMBEDDING_DIM,
        kernel_initializer=keras.initializers.GlorotUniform(
            seed=None if seed is None else seed + len(_TRUNK)
        ),
        name="embedding",
    )(x)
    return keras.Model(inputs, outputs, name=name)


def build_classifier(
    encoder: keras.Model, name: str, n_classes: int = len(CLASS_NAMES)
) -> keras.Model:
    """Put a linear layer of class logits on ``encoder``, as one flat model.

    The encoder's layers become the classifier's own (not a nested model), so
    ``classifier.get_layer(LAST_CONV)`` reaches the trunk. The output is
    ``(N, n_classes)`` logits, without a softmax.
    """
    import keras

    logits = keras.layers.Dense(n_classes, name="logits")(encoder.output)
    return keras.Model(encoder.input, logits, name=name)


def load_encoder() -> keras.Model:
    """The contrastive shape encoder: ``(N, 64, 64, 3)`` to ``(N, 128)``.

    Trained from scratch with NT-Xent on pairs of views of the same object;
    see ``weights/shapes_encoder.json`` for the recipe and measured figures.
    """
    encoder = build_encoder("shapes_encoder")
    encoder.load_weights(_weights(ENCODER_FILE))
    return encoder


def load_probe() -> keras.Model:
    """The encoder with its linear probe: ``(N, 64, 64, 3)`` to ``(N, 6)`` logits.

    One functional model, named ``shapes_probe``; the probe is a single dense
    layer ``logits`` on the encoder's ``embedding``.
    """
    probe = build_classifier(build_encoder("shapes_encoder"), "shapes_probe")
    probe.load_weights(_weights(PROBE_FILE))
    probe.class_names = CLASS_NAMES  # read by ssx.adapt for targets and labels
    return probe


def load_shortcut_classifier() -> keras.Model:
    """A supervised classifier trained on ``shapes(..., shortcut=True)``.

    Same trunk as the encoder, trained end to end on images whose corner patch
    gives the class away: ``(N, 64, 64, 3)`` to ``(N, 6)`` logits.
    """
    model = build_classifier(build_encoder("shortcut_encoder"), "shortcut_classifier")
    model.load_weights(_weights(SHORTCUT_FILE))
    model.class_names = CLASS_NAMES
    return model


def load_random_encoder() -> keras.Model:
    """The encoder's architecture with untrained, fixed weights (a baseline).

    Initialised with seed ``RANDOM_ENCODER_SEED``; the weights ship with the
    package so the baseline is the same under every Keras version.
    """
    encoder = build_encoder("shapes_random_encoder")
    encoder.load_weights(_weights(RANDOM_ENCODER_FILE))
    return encoder


def _weights(filename: str) -> str:
    path = WEIGHTS_DIR / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"expected the shipped weights at {path}; they are missing. Train "
            "them with `python -m ssxwidgets.demo.train shapes` (or `shortcut`)."
        )
    return str(path)
