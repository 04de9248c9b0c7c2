"""Targets: every one is w · t(output), bound to its inputs."""

from __future__ import annotations

import factories
import numpy as np
import pytest

from ssxwidgets.models import ModelAdapter
from ssxwidgets.targets import (
    ClassTarget,
    Corpus,
    Direction,
    EmbeddingSimilarity,
    Similarity,
    TopClass,
    resolve_target,
)


@pytest.fixture(scope="module")
def encoder():
    return ModelAdapter(factories.small_encoder())


@pytest.fixture(scope="module")
def classifier():
    return ModelAdapter(factories.small_cnn())


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_top_class_is_the_argmax(classifier):
    """ "top" binds each input to its own predicted class."""
    x = factories.images(6)
    bound = TopClass().bind(classifier, x)
    np.testing.assert_array_equal(bound.classes, classifier.predict(x).argmax(1))
    scores = classifier.evaluate(x, bound)
    np.testing.assert_allclose(scores, classifier.predict(x).max(1), rtol=1e-5)


def test_targets_that_run_the_model_keep_its_scalars(classifier, encoder):
    """Binding "top" or EmbeddingSimilarity evaluates the model anyway; the
    bound target keeps the scalars at the inputs, equal to evaluating them,
    so methods need no evaluation of f(x) of their own."""
    x = factories.images(4)
    for adapter, target in (
        (classifier, TopClass()),
        (encoder, EmbeddingSimilarity()),
        (encoder, EmbeddingSimilarity("cosine")),
    ):
        bound = target.bind(adapter, x)
        assert bound.outputs is not None
        np.testing.assert_allclose(
            bound.outputs, adapter.evaluate(x, bound), rtol=1e-4, atol=1e-6
        )
        np.testing.assert_allclose(
            bound.take(np.array([2, 0])).outputs, bound.outputs[[2, 0]]
        )
    assert ClassTarget(1).bind(classifier, x).outputs is None


def test_embedding_similarity_is_the_inner_product_with_itself(encoder):
    """Unperturbed, the label-free target equals ‖f(x)‖²."""
    x = factories.images(3)
    bound = EmbeddingSimilarity().bind(encoder, x)
    embeddings = encoder.predict(x)
    np.testing.assert_allclose(
        encoder.evaluate(x, bound), (embeddings**2).sum(1), rtol=1e-4
    )


def test_similarity_and_corpus_are_cosines(encoder):
    """Similarity(ref) is the cosine to ref's embedding; Corpus with a foil is
    mean cosine to the corpus minus mean cosine to the foil."""
    x, ref = factories.images(2), factories.images(1, seed=9)
    corpus, foil = factories.images(3, seed=4), factories.images(2, seed=5)
    e_x, e_ref = encoder.predict(x), encoder.predict(ref)[0]
    e_c, e_f = encoder.predict(corpus), encoder.predict(foil)
    scores = encoder.evaluate(x, Similarity(ref).bind(encoder, x))
    np.testing.assert_allclose(scores, [_cos(e, e_ref) for e in e_x], rtol=1e-4)
    scores = encoder.evaluate(x, Corpus(corpus, foil).bind(encoder, x))
    expected = [
        np.mean([_cos(e, c) for c in e_c]) - np.mean([_cos(e, f) for f in e_f])
        for e in e_x
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)


def test_direction_is_a_projection(encoder):
    """Direction(v) scores v · f(x)."""
    x = factories.images(2)
    v = np.linspace(-1, 1, encoder.n_outputs)
    scores = encoder.evaluate(x, Direction(v).bind(encoder, x))
    np.testing.assert_allclose(scores, encoder.predict(x) @ v, rtol=1e-4)


def test_defaults_follow_the_model_kind(encoder, classifier):
    """No target means the top class for a classifier, self-similarity for an
    encoder."""
    assert isinstance(resolve_target(None, classifier), TopClass)
    assert isinstance(resolve_target(None, encoder), EmbeddingSimilarity)
    assert isinstance(resolve_target(3, classifier), ClassTarget)


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (5, ValueError, r"\[0, 4\].*got 5"),
        (-1, ValueError, "got -1"),
        ("best", ValueError, "'best'"),
        (1.5, TypeError, "float"),
        (True, TypeError, "True"),
    ],
)
def test_bad_targets_say_what_was_expected(classifier, target, error, message):
    """Unknown class indices and target types raise naming expected and got."""
    with pytest.raises(error, match=message):
        resolve_target(target, classifier).bind(classifier, factories.images(1))


def test_direction_of_the_wrong_size_is_refused(encoder):
    """A direction must live in the model's output space."""
    with pytest.raises(ValueError, match=r"\(64,\).*got \(3,\)"):
        Direction([1, 2, 3]).bind(encoder, factories.images(1))
