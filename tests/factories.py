"""Models and data shared by the tests: small, real, and fast to build.

Each factory seeds everything it draws, so a test sees the same model every
run.
"""

from __future__ import annotations

import numpy as np


def images(n: int = 2, size: int = 32, channels: int = 3, seed: int = 0) -> np.ndarray:
    """`(n, size, size, channels)` float32 images in [0, 1]."""
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, channels), dtype=np.float32)


def small_cnn(size: int = 32, n_classes: int = 5, seed: int = 0, channels: int = 3):
    """A real Keras CNN producing logits: conv → conv → GAP → dense.

    Its last convolution is named ``"last_conv"`` for layer taps.
    """
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, channels))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(
        16, 3, strides=2, padding="same", activation="relu", name="last_conv"
    )(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def small_encoder(size: int = 32, dim: int = 64, seed: int = 0):
    """A real Keras image encoder with a `dim`-d embedding (no class head)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(
        32, 3, strides=2, padding="same", activation="relu", name="last_conv"
    )(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(dim, name="embedding")(x)
    return keras.Model(inputs, outputs, name="small_encoder")


def tabular_mlp(n_features: int = 8, n_classes: int = 2, seed: int = 0):
    """A real Keras MLP on `(N, n_features)` rows producing logits."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((n_features,))
    x = keras.layers.Dense(16, activation="tanh")(inputs)
    outputs = keras.layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="tabular_mlp")
