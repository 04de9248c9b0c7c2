"""The image half of the demo: the shapes generator, the shipped models, training."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssxwidgets.demo import image_models
from ssxwidgets.demo.shapes import (
    CLASS_NAMES,
    PATCH_COLOURS,
    PATCH_SIZE,
    ShapesData,
    shapes,
)

WEIGHTS = image_models.WEIGHTS_DIR


def _card(name: str) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((WEIGHTS / f"{name}.json").read_text())
    return card


def _predict(model: Any, images: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [np.asarray(model(images[i : i + 256])) for i in range(0, len(images), 256)]
    )


def _accuracy(model: Any, data: ShapesData) -> float:
    return float(np.mean(_predict(model, data.images).argmax(1) == data.labels))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every attempt to open a network connection fail."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def probe() -> Any:
    return image_models.load_probe()


@pytest.fixture(scope="module")
def shortcut_classifier() -> Any:
    return image_models.load_shortcut_classifier()


# ------------------------------------------------------------------ generator


def test_shapes_returns_documented_arrays() -> None:
    """A batch has the documented shapes, dtypes, value ranges and names."""
    data = shapes(12, seed=5)

    assert data.images.shape == (12, 64, 64, 3)
    assert data.images.dtype == np.float32
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    assert data.labels.shape == (12,)
    assert np.issubdtype(data.labels.dtype, np.integer)
    assert data.labels.min() >= 0 and data.labels.max() < len(CLASS_NAMES)
    assert data.masks.shape == (12, 64, 64) and data.masks.dtype == bool
    assert data.class_names == CLASS_NAMES and len(CLASS_NAMES) >= 5
    assert data.patch_masks is None and len(data) == 12


def test_shapes_is_deterministic_for_a_seed() -> None:
    """The same seed gives the same images, labels and masks."""
    first, second = shapes(20, seed=11), shapes(20, seed=11)

    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.masks, second.masks)


def test_shapes_differ_across_seeds() -> None:
    """Different seeds give different images and labels."""
    first, second = shapes(20, seed=1), shapes(20, seed=2)

    assert not np.allclose(first.images, second.images)
    assert not np.array_equal(first.labels, second.labels)


def test_every_class_appears_with_varied_sizes() -> None:
    """Every class is drawn, and object sizes vary."""
    data = shapes(300, seed=3)
    areas = data.masks.sum(axis=(1, 2))

    assert set(data.labels.tolist()) == set(range(len(CLASS_NAMES)))
    assert areas.min() > 40
    assert areas.max() > 2 * areas.min()


def test_masks_hold_the_object_colour_and_nothing_around_them() -> None:
    """Inside a mask the pixels share one colour; just outside they differ."""
    from scipy.ndimage import binary_dilation

    data = shapes(64, seed=4)
    spread_inside, contrast_edge = [], []
    for image, mask in zip(data.images, data.masks, strict=True):
        colour = np.median(image[mask], axis=0)
        band = binary_dilation(mask, iterations=2) & ~mask
        spread_inside.append(np.abs(image[mask] - colour).max(axis=1).mean())
        contrast_edge.append(np.abs(image[band] - colour).max(axis=1).mean())

    # Shading and sensor noise keep the fill within ~0.15 of its median;
    # the band outside is background, chosen to stand out from the object.
    assert np.mean(spread_inside) < 0.12
    assert np.mean(contrast_edge) > 3 * np.mean(spread_inside)


def test_ring_masks_have_holes_and_circle_masks_do_not() -> None:
    """A ring's mask leaves its centre out; a circle's mask includes it."""
    data = shapes(200, seed=6)
    for label, expect_centre in (
        (CLASS_NAMES.index("ring"), False),
        (CLASS_NAMES.index("circle"), True),
    ):
        for mask in data.masks[data.labels == label]:
            rows, cols = np.nonzero(mask)
            centre = (rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2
            assert bool(mask[centre]) is expect_centre


def test_shortcut_patch_colour_follows_the_class() -> None:
    """With shortcut=True the corner patch wears its class's colour."""
    data = shapes(60, seed=7, shortcut=True)

    assert data.patch_masks is not None
    assert data.patch_masks.shape == (60, 64, 64)
    assert (data.patch_masks.sum(axis=(1, 2)) == PATCH_SIZE**2).all()
    assert not (data.patch_masks & data.masks).any()
    patch = data.images[data.patch_masks].reshape(60, PATCH_SIZE**2, 3)
    np.testing.assert_allclose(
        patch, np.broadcast_to(PATCH_COLOURS[data.labels][:, None], patch.shape)
    )


def test_shuffled_patch_colour_is_independent_of_the_class() -> None:
    """With "shuffled" the patch colour rarely matches the class; nothing else moves."""
    shuffled = shapes(300, seed=8, shortcut="shuffled")
    honest = shapes(300, seed=8, shortcut=True)
    assert shuffled.patch_masks is not None

    patch = shuffled.images[:, 2, 2]
    matches = np.all(np.isclose(patch, PATCH_COLOURS[shuffled.labels]), axis=1)
    assert matches.mean() < 0.35
    # Same objects and backgrounds: only the patch pixels differ.
    np.testing.assert_array_equal(shuffled.labels, honest.labels)
    outside = ~shuffled.patch_masks
    np.testing.assert_array_equal(shuffled.images[outside], honest.images[outside])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": 2.5}, "n must be a positive integer"),
        ({"n": True}, "n must be a positive integer"),
        ({"n": 4, "seed": -1}, "seed must be a non-negative integer"),
        ({"n": 4, "seed": "a"}, "seed must be a non-negative integer"),
        ({"n": 4, "shortcut": "yes"}, "shortcut must be False, True or 'shuffled'"),
    ],
)
def test_shapes_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    """Bad arguments raise a ValueError that names what was expected."""
    with pytest.raises(ValueError, match=message):
        shapes(**kwargs)


def test_shapes_makes_a_thousand_images_quickly() -> None:
    """A thousand images with masks take well under two seconds."""
    shapes(64, seed=0)  # warm caches
    started = time.perf_counter()
    shapes(1000, seed=9)
    assert time.perf_counter() - started < 2.0


# --------------------------------------------------------------------- models


@pytest.mark.parametrize(
    ("loader", "name", "width"),
    [
        (image_models.load_encoder, "shapes_encoder", image_models.EMBEDDING_DIM),
        (image_models.load_probe, "shapes_probe", len(CLASS_NAMES)),
        (image_models.load_shortcut_classifier, "shortcut_classifier", 6),
        (
            image_models.load_random_encoder,
            "shapes_random_encoder",
            image_models.EMBEDDING_DIM,
        ),
    ],
)
def test_loaders_work_offline_and_fast(
    no_network: None, loader: Any, name: str, width: int
) -> None:
    """Each loader builds its model offline, in under two seconds."""
    import tensorflow  # noqa: F401  (the bound counts from an imported TF)

    started = time.perf_counter()
    model = loader()
    elapsed = time.perf_counter() - started

    assert elapsed < 2.0
    assert model.name == name
    assert model(np.zeros((2, 64, 64, 3), np.float32)).shape == (2, width)
    last_conv = model.get_layer(image_models.LAST_CONV)
    assert len(last_conv.output.shape) == 4 and last_conv.output.shape[1] > 1


def test_probe_outputs_logits_not_probabilities(probe: Any) -> None:
    """The probe's outputs are unnormalised logits, not a softmax."""
    outputs = _predict(probe, shapes(16, seed=10).images)

    assert not np.allclose(outputs.sum(axis=1), 1.0)
    assert (outputs < 0).any()


def test_random_encoder_is_fixed_and_not_the_trained_one() -> None:
    """The random encoder loads the same weights each time, unlike the trained."""
    images = shapes(8, seed=12).images
    first = _predict(image_models.load_random_encoder(), images)
    again = _predict(image_models.load_random_encoder(), images)
    trained = _predict(image_models.load_encoder(), images)

    np.testing.assert_allclose(first, again)
    assert not np.allclose(first, trained, atol=1e-3)


def test_probe_card_meets_the_bars() -> None:
    """The probe's card records ≥ 85 % accuracy and twice the random baseline."""
    metrics = _card("shapes_encoder")["metrics"]

    assert metrics["accuracy"] >= 0.85
    assert metrics["accuracy"] >= 2 * metrics["random_encoder_probe_accuracy"]
    assert metrics["integrated_gradients"]["baseline_blur"]["max_in_object"] >= 0.5


def test_shortcut_card_meets_the_bar() -> None:
    """The shortcut card records a drop of over 30 points with a shuffled patch."""
    metrics = _card("shortcut_classifier")["metrics"]

    assert metrics["accuracy"] - metrics["shuffled_accuracy"] > 0.30


def test_probe_reproduces_its_card(probe: Any) -> None:
    """The shipped probe scores on fresh data what its card states."""
    check = _card("shapes_encoder")["metrics"]["check"]
    data = shapes(check["n"], seed=check["seed"])

    assert _accuracy(probe, data) == pytest.approx(check["accuracy"], abs=0.02)


def test_shortcut_classifier_reproduces_its_card(shortcut_classifier: Any) -> None:
    """The shortcut classifier's accuracies, honest and shuffled, match its card."""
    check = _card("shortcut_classifier")["metrics"]["check"]
    honest = shapes(check["n"], seed=check["seed"], shortcut=True)
    shuffled = shapes(check["n"], seed=check["seed"], shortcut="shuffled")

    assert _accuracy(shortcut_classifier, honest) == pytest.approx(
        check["accuracy"], abs=0.02
    )
    assert _accuracy(shortcut_classifier, shuffled) == pytest.approx(
        check["shuffled_accuracy"], abs=0.02
    )


def test_probe_attributions_land_on_the_object(probe: Any) -> None:
    """Integrated gradients (blurred baseline) peak inside the object mostly."""
    from ssxwidgets.demo.train_images import (
        blur_baseline,
        ig_max_inside,
        integrated_gradients,
    )

    data = shapes(48, seed=13)
    attributions = integrated_gradients(
        probe, data.images, data.labels, blur_baseline(data.images), n_steps=32
    )

    # Chance is the object's share of the image, about one in ten.
    assert ig_max_inside(attributions, data.masks).mean() >= 0.5


def test_integrated_gradients_are_complete(probe: Any) -> None:
    """Attributions sum to the logit difference between input and baseline."""
    from ssxwidgets.demo.train_images import blur_baseline, integrated_gradients

    data = shapes(4, seed=14)
    baselines = blur_baseline(data.images)
    attributions = integrated_gradients(
        probe, data.images, data.labels, baselines, n_steps=64
    )
    rows = np.arange(4)
    difference = (
        _predict(probe, data.images)[rows, data.labels]
        - _predict(probe, baselines)[rows, data.labels]
    )

    np.testing.assert_allclose(
        attributions.sum(axis=(1, 2, 3)), difference, rtol=0.1, atol=0.05
    )


# ------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize(
    ("name", "files"),
    [
        (
            "shapes",
            [
                "shapes_encoder.weights.h5",
                "shapes_probe.weights.h5",
                "shapes_random_encoder.weights.h5",
                "shapes_encoder.json",
            ],
        ),
        ("shortcut", ["shortcut_classifier.weights.h5", "shortcut_classifier.json"]),
    ],
)
def test_quick_training_run_completes(
    tmp_path: Path, name: str, files: list[str]
) -> None:
    """`python -m ssxwidgets.demo.train NAME --quick` writes weights and a card."""
    from ssxwidgets.demo.train import main

    main([name, "--quick", "--out", str(tmp_path)])

    for filename in files:
        assert (tmp_path / filename).is_file()
    card = json.loads((tmp_path / files[-1]).read_text())
    assert card["quick"] is True
    assert 0.0 <= card["metrics"]["accuracy"] <= 1.0
    assert "tensorflow" in card["versions"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_quick_run_never_overwrites_the_shipped_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quick run aimed at the shipped weights folder writes elsewhere."""
    from ssxwidgets.demo import train_images

    shipped = tmp_path / "weights"
    shipped.mkdir()
    sentinel = shipped / "shortcut_classifier.json"
    sentinel.write_text("{}")
    monkeypatch.setattr(image_models, "WEIGHTS_DIR", shipped)

    card = train_images.train("shortcut", out=shipped, quick=True)

    assert sentinel.read_text() == "{}"
    assert sorted(path.name for path in shipped.iterdir()) == [sentinel.name]
    assert card["quick"] is True
