"""What is explained: one scalar per input, computed from the model's output.

Every target here reduces a model output `o` of shape `(K,)` to a scalar of
the form ``w · t(o)``, where ``t`` is the identity or L2 normalisation and
``w`` is a per-input weight vector fixed when the target is bound to a batch of
inputs. That single form covers a class score (``w`` one-hot), a direction in
embedding space, and the label-free similarities, and lets the model adapter
compile one function for all of them.

Usage::

    ssx.attribute(model, x, target=3)                      # class index
    ssx.attribute(model, x, target="top")                  # predicted class
    ssx.attribute(encoder, x, target=EmbeddingSimilarity())
    ssx.attribute(encoder, x, target=Similarity(other_image))
    ssx.attribute(encoder, x, target=Corpus(cats, foil=dogs))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .models import ModelAdapter

__all__ = [
    "BoundTarget",
    "ClassTarget",
    "Corpus",
    "Direction",
    "EmbeddingSimilarity",
    "Similarity",
    "Target",
    "TopClass",
    "resolve_target",
]


@dataclass(frozen=True)
class BoundTarget:
    """A target fixed to a batch of inputs.

    Attributes
    ----------
    weights
        `(N, K)` float32: the scalar for input ``i`` is
        ``weights[i] · t(output)``.
    normalize
        Whether ``t`` L2-normalises the output first (cosine similarities).
    description
        Human-readable, e.g. ``"class 3 (square)"``.
    classes
        `(N,)` class index per input for class targets, else ``None``.
    outputs
        `(N,)` float32: the scalar at each bound input, when binding ran the
        model anyway (``"top"``, `EmbeddingSimilarity`), else ``None``;
        methods take ``f(x)`` from it instead of evaluating it again.
    """

    weights: np.ndarray
    normalize: bool
    description: str
    classes: np.ndarray | None = None
    outputs: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> BoundTarget:
        """The target for a subset (or repetition) of the inputs."""
        classes = None if self.classes is None else self.classes[rows]
        outputs = None if self.outputs is None else self.outputs[rows]
        return BoundTarget(
            self.weights[rows], self.normalize, self.description, classes, outputs
        )

    def reduce(self, outputs: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Scalars `(M,)` from raw model outputs `(M, K)` in numpy.

        ``rows`` `(M,)` says which bound input each output row belongs to;
        by default row ``i`` belongs to input ``i``.
        """
        outputs = outputs.reshape(len(outputs), -1).astype(np.float32)
        if self.normalize:
            norms = np.linalg.norm(outputs, axis=1, keepdims=True)
            outputs = outputs / np.maximum(norms, 1e-12)
        weights = self.weights if rows is None else self.weights[rows]
        return np.einsum("mk,mk->m", outputs, weights)


class Target(ABC):
    """Something to explain, before it is fixed to particular inputs."""

    #: whether the target needs no labels (encoders)
    label_free: bool = False

    @abstractmethod
    def bind(self, adapter: ModelAdapter, inputs: np.ndarray) -> BoundTarget:
        """Fix the target to `inputs` `(N, ...)` for the model behind `adapter`."""


def _one_hot(classes: np.ndarray, n_outputs: int) -> np.ndarray:
    weights = np.zeros((len(classes), n_outputs), np.float32)
    weights[np.arange(len(classes)), classes] = 1.0
    return weights


class ClassTarget(Target):
    """The score of one class, or one class per input.

    Parameters
    ----------
    index
        A class index, or a sequence with one index per input.
    """

    def __init__(self, index: int | np.ndarray | list[int]) -> None:
        self.index = index

    def bind(self, adapter: ModelAdapter, inputs: np.ndarray) -> BoundTarget:
        classes = np.broadcast_to(np.asarray(self.index), (len(inputs),))
        if not np.issubdtype(classes.dtype, np.integer):
            raise TypeError(
                f"a class target must be an integer index; got {self.index!r}"
            )
        n_outputs = adapter.n_outputs
        bad = (classes < 0) | (classes >= n_outputs)
        if bad.any():
            raise ValueError(
                f"class index must be in [0, {n_outputs - 1}] for a model with "
                f"{n_outputs} outputs; got {int(classes[bad][0])}"
            )
        description = _class_description(adapter, classes)
        return BoundTarget(
            _one_hot(classes, n_outputs),
            False,
            description,
            classes.astype(np.int64).copy(),
        )

    def __repr__(self) -> str:
        return f"ClassTarget({self.index!r})"


class TopClass(Target):
    """The class the model predicts for each input (the arg-max output)."""

    def bind(self, adapter: ModelAdapter, inputs: np.ndarray) -> BoundTarget:
        outputs = adapter.predict(inputs).reshape(len(inputs), -1)
        bound = ClassTarget(outputs.argmax(axis=1)).bind(adapter, inputs)
        return replace(bound, outputs=bound.reduce(outputs))

    def __repr__(self) -> str:
        return "TopClass()"


class EmbeddingSimilarity(Target):
    """Label-free: how much of an input's own embedding a perturbation keeps.

    The scalar is ``<f(x), f(x')>`` where ``f(x)`` is the embedding of the
    unperturbed input, as in label-free feature importance (Crabbé & van der
    Schaar, "Label-Free Explainability for Unsupervised Models", ICML 2022).

    Parameters
    ----------
    metric
        ``"dot"`` (the paper's inner product) or ``"cosine"``.
    """

    label_free = True

    def __init__(self, metric: str = "dot") -> None:
        self.metric = _check_metric(metric)

    def bind(self, adapter: ModelAdapter, inputs: np.ndarray) -> BoundTarget:
        cosine = self.metric == "cosine"
        embeddings = _embed(adapter, inputs, cosine)
        # <t(f(x)), t(f(x))>: the embedding's squared norm, or 1 for cosine
        outputs = np.einsum("nk,nk->n", embeddings, embeddings)
        return BoundTarget(
            embeddings, cosine, "similarity to own embedding", outputs=outputs
        )

    def __repr__(self) -> str:
        return f"EmbeddingSimilarity(metric={self.metric!r})"


class Similarity(Target):
    """Label-free: similarity of each input's embedding to a reference input's.

    Parameters
    ----------
    reference
        One input, shaped like one of the explained inputs (or with a batch
        axis of 1).
    metric
        ``"cosine"`` (default) or ``"dot"``.
    """

    label_free = True

    def __init__(self, reference: Any, metric: str = "cosine") -> None:
        self.reference = reference
        self.metric = _check_metric(metric)

    def bind(self, adapter: ModelAdapter, inputs: np.ndarray) -> BoundTarget:
        reference = adapter.prepare_inputs(self.reference)
        if len(reference) != 1:
            raise ValueError(
                f"Similarity expects one reference input; got {len(reference)}"
            )
        embedding = _embed(adapter, reference, self.metric == "cosine")
        weights = np.repeat(embedding, len(inputs), axis=0)
        return BoundTarget(weights, self.metric == "cosine", "similarity to reference")

    def __repr__(self) -> str:
        return f"Similarity(<reference>, metric={self.metric!r})"


class Direction(Target):
    """Label-free: the projection of the embedding on a direction.

    Parameters
    ----------
    vector
        `(K,)`, the direction in the model's output space (e.g. a concept
        activation vector); it is used as given, not normalised.
    """

    label_free = True

    def __init__(self, vector: Any) -> None:
        self.vector = np.asarray(vector, np.float32).reshape(-1)

    def bind(self, adapter: ModelAdapter, inputs: np.ndarray) -> BoundTarget:
        if self.vector.shape != (adapter.n_outputs,):
            raise ValueError(
                f"Direction expects a vector of shape ({adapter.n_outputs},), "
                f"the model's output size; got {self.vector.shape}"
            )
        if not np.isfinite(self.vector).all():
            raise ValueError("Direction's vector contains NaN or Inf")
        weights = np.repeat(self.vector[None], len(inputs), axis=0)
        return BoundTarget(weights, False, "projection on a direction")

    def __repr__(self) -> str:
        return f"Direction(<{self.vector.shape[0]}-d vector>)"


class Corpus(Target):
    """Label-free, contrastive: similarity to a corpus, less to a foil.

    The scalar is the mean cosine similarity of the input's embedding to the
    corpus embeddings minus its mean cosine similarity to the foil's (COCOA:
    Lin et al., "Contrastive Corpus Attribution for Explaining
    Representations", ICLR 2023). Being linear in the normalised embedding it
    reduces to one weight vector.

    Parameters
    ----------
    corpus
        `(M, ...)` inputs that share the concept to explain.
    foil
        `(M', ...)` inputs to contrast against, or ``None``.
    """

    label_free = True

    def __init__(self, corpus: Any, foil: Any = None) -> None:
        self.corpus = corpus
        self.foil = foil

    def bind(self, adapter: ModelAdapter, inputs: np.ndarray) -> BoundTarget:
        corpus = _embed(adapter, adapter.prepare_inputs(self.corpus), True)
        weight = corpus.mean(axis=0)
        description = f"similarity to a corpus of {len(corpus)}"
        if self.foil is not None:
            foil = _embed(adapter, adapter.prepare_inputs(self.foil), True)
            weight = weight - foil.mean(axis=0)
            description += f" against a foil of {len(foil)}"
        weights = np.repeat(weight[None], len(inputs), axis=0).astype(np.float32)
        return BoundTarget(weights, True, description)

    def __repr__(self) -> str:
        return "Corpus(<corpus>)" if self.foil is None else "Corpus(<corpus>, <foil>)"


def _check_metric(metric: str) -> str:
    if metric not in ("dot", "cosine"):
        raise ValueError(f"metric must be 'dot' or 'cosine'; got {metric!r}")
    return metric


def _embed(adapter: ModelAdapter, inputs: np.ndarray, normalize: bool) -> np.ndarray:
    embeddings = adapter.predict(inputs).reshape(len(inputs), -1)
    embeddings = embeddings.astype(np.float32)
    if normalize:
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        embeddings = embeddings / np.maximum(norms, 1e-12)
    return embeddings


def _class_description(adapter: ModelAdapter, classes: np.ndarray) -> str:
    unique = np.unique(classes)
    if len(unique) > 1:
        return "class per input"
    index = int(unique[0])
    names = adapter.class_names
    if names is not None and index < len(names):
        return f"class {index} ({names[index]})"
    return f"class {index}"


def resolve_target(target: Any, adapter: ModelAdapter) -> Target:
    """Turn what a user typed into a `Target`.

    ``None`` means ``"top"`` for a classifier and `EmbeddingSimilarity` for an
    encoder; an ``int`` (or a sequence of them) is a class index; ``"top"``
    is the predicted class; a `Target` is used as it is.
    """
    if target is None:
        if adapter.output_kind == "embedding":
            return EmbeddingSimilarity()
        return TopClass()
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        if target == "top":
            return TopClass()
        if target in ("embedding", "self", "embedding_similarity"):
            return EmbeddingSimilarity()
        raise ValueError(
            "target must be an int class index, 'top', or an ssx.targets "
            f"object such as EmbeddingSimilarity(); got {target!r}"
        )
    if isinstance(target, bool):
        raise TypeError(f"target must be a class index or a Target; got {target!r}")
    if isinstance(target, int | np.integer):
        return ClassTarget(int(target))
    if isinstance(target, list | tuple | np.ndarray):
        return ClassTarget(np.asarray(target))
    raise TypeError(
        "target must be an int class index, 'top', or an ssx.targets object; "
        f"got {type(target).__name__}"
    )
