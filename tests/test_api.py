"""The public surface: names, errors before work, provenance."""

from __future__ import annotations

import importlib

import factories
import numpy as np
import pytest

import ssxwidgets as ssx

PUBLIC_MODULES = [
    "ssxwidgets",
    "ssxwidgets.api",
    "ssxwidgets.explanation",
    "ssxwidgets.jobs",
    "ssxwidgets.models",
    "ssxwidgets.targets",
    "ssxwidgets.baselines",
    "ssxwidgets.methods",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_complete_and_sorted(name):
    """Every public module lists its public names in a sorted __all__."""
    module = importlib.import_module(name)
    public = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and getattr(value, "__module__", name) == name
        and not isinstance(value, type(importlib))
        and key not in {"annotations", "logger", "TYPE_CHECKING"}
        and (callable(value) or isinstance(value, tuple))
    }
    assert public <= set(module.__all__), public - set(module.__all__)
    assert list(module.__all__) == sorted(module.__all__, key=_isort_order)


def _isort_order(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions, as ruff's RUF022 sorts them."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_every_method_name_is_registered():
    """Each name in API.md resolves to a module whose SPEC carries that name."""
    from ssxwidgets.methods import get_spec

    for name in ssx.METHOD_NAMES:
        assert get_spec(name).name == name


def test_unknown_parameter_lists_the_valid_ones():
    """A misspelt parameter is a TypeError naming what the method takes."""
    with pytest.raises(TypeError, match="takes no parameter 'n_step'.*absolute"):
        ssx.attribute(
            factories.small_cnn(), factories.images(1), method="saliency", n_step=3
        )


def test_unknown_method_lists_the_methods():
    """An unknown method name is a ValueError listing every method."""
    with pytest.raises(ValueError, match="unknown method 'shapley'.*saliency"):
        ssx.attribute(factories.small_cnn(), factories.images(1), method="shapley")


def test_explanation_carries_its_provenance():
    """What produced a result travels with it: method, target, params, seed,
    device, versions and the evaluations spent."""
    exp = ssx.attribute(
        factories.small_cnn(), factories.images(2), method="saliency", target=1, seed=3
    )
    assert exp.method == "saliency" and exp.target == "class 1"
    assert exp.params == {"absolute": True} and exp.seed == 3
    assert exp.device == "CPU" and exp.n_evaluations == 2
    assert set(exp.versions) >= {"ssxwidgets", "tensorflow", "numpy"}
    assert exp.values.shape == (2, 32, 32, 3) and exp.map.shape == (2, 32, 32)


def test_to_shap_keeps_values_and_base_values():
    """to_shap() gives a shap.Explanation with the same arrays."""
    import shap

    exp = ssx.attribute(
        factories.tabular_mlp(), np.ones((3, 8), np.float32), method="saliency"
    )
    converted = exp.to_shap()
    assert isinstance(converted, shap.Explanation)
    np.testing.assert_array_equal(converted.values, exp.values)
    np.testing.assert_array_equal(converted.base_values, exp.base_values)


def test_map_of_a_table_explains_why_not():
    """.map is for images; on a table it says so and shows the shape."""
    exp = ssx.attribute(
        factories.tabular_mlp(), np.ones((1, 8), np.float32), method="saliency"
    )
    with pytest.raises(ValueError, match=r"\(N, H, W, C\).*\(1, 8\)"):
        _ = exp.map


@pytest.mark.parametrize(
    ("method", "params", "error", "match"),
    [
        ("saliency", {"absolute": "yes"}, TypeError, r"absolute.*got 'yes'"),
        ("integrated_gradients", {"n_steps": 0}, ValueError, r"n_steps.*got 0"),
        ("smoothgrad", {"noise": 3.0}, ValueError, r"noise.*got 3.0"),
        ("expected_gradients", {"background": np.zeros((2, 4))}, ValueError, "M,"),
        ("gradcam", {"layer": "nope"}, ValueError, r"'nope'"),
        ("occlusion", {"window": 0}, ValueError, r"window.*got 0"),
        (
            "rise",
            {"baseline": np.zeros((5, 5, 3))},
            ValueError,
            r"\(32, 32, 3\).*got .*\(5, 5, 3\)",
        ),
        ("relax", {"p": 1.0}, ValueError, r"p must be in \(0, 1\)"),
        ("lime", {"n_samples": 0}, ValueError, r"n_samples.*got 0"),
        ("lime", {"segmentation": "watershed"}, ValueError, "got 'watershed'"),
        ("kernel_shap", {"l1_reg": "lots"}, ValueError, r"l1_reg.*got 'lots'"),
        ("kernel_shap", {"segmentation": 3.5}, ValueError, "segmentation.*float"),
        ("partition_shap", {"max_evals": 2}, ValueError, r"max_evals.*got 2"),
        ("partition_shap", {"masker": "blur(0,8)"}, ValueError, "blur"),
    ],
)
def test_stream_refuses_bad_parameters_when_called(method, params, error, match):
    """ssx.stream raises a bad parameter's error at the call itself, before
    the generator is iterated and before the model is evaluated once (even
    for the default target, the predicted class, which needs an evaluation
    to bind)."""
    adapter = ssx.ModelAdapter(factories.small_cnn())
    with pytest.raises(error, match=match):
        ssx.stream(adapter, factories.images(1), method=method, **params)
    assert adapter.n_evaluations == 0


def test_run_checks_a_request_built_by_hand():
    """A request built by hand (not through prepare) is checked by run with
    the same error, before any evaluation."""
    from ssxwidgets.api import prepare
    from ssxwidgets.methods import get_method

    adapter = ssx.ModelAdapter(factories.small_cnn())
    request = prepare(adapter, factories.images(1), "lime", target=0)
    request.params["n_samples"] = 1
    _, run = get_method("lime")
    with pytest.raises(ValueError, match=r"n_samples.*got 1"):
        next(run(request))
    assert adapter.n_evaluations == 0
