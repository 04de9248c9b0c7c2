"""The tabular half of the demo: breast-cancer split, credit generator, models."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ssxwidgets.demo import table_models, train_tables
from ssxwidgets.demo.tables import (
    CREDIT_DRIVERS,
    CREDIT_FEATURES,
    CreditData,
    MedicalData,
    breast_cancer,
    credit,
    default_probability,
)

WEIGHTS = table_models.WEIGHTS
MEDICAL_LOGIT_MODELS = ("medical_probe", "medical_classifier", "medical_random_probe")


def _card(name: str, folder: Path = WEIGHTS) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((folder / f"{name}.json").read_text())
    return card


def _outputs(model: Any, inputs: np.ndarray) -> np.ndarray:
    return np.asarray(model(inputs).numpy(), dtype=np.float64)


def _column(name: str) -> int:
    return CREDIT_FEATURES.index(name)


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
def medical() -> MedicalData:
    return breast_cancer()


@pytest.fixture(scope="module")
def book() -> CreditData:
    return credit(20_000, seed=3)


@pytest.fixture(scope="module")
def credit_model() -> Any:
    return table_models.load_credit_model()


@pytest.fixture(scope="module")
def credit_test() -> CreditData:
    card = _card("credit_model")
    return credit(card["recipe"]["n_test"], seed=card["seed"] + 1)


# --------------------------------------------------------------- breast cancer


def test_breast_cancer_split_is_fixed(medical: MedicalData) -> None:
    """Every call returns the same split, rows and labels alike."""
    again = breast_cancer()

    np.testing.assert_array_equal(medical.x_train, again.x_train)
    np.testing.assert_array_equal(medical.x_test, again.x_test)
    np.testing.assert_array_equal(medical.y_train, again.y_train)
    np.testing.assert_array_equal(medical.y_test, again.y_test)


def test_breast_cancer_split_is_stratified_and_complete(medical: MedicalData) -> None:
    """Train and test partition the 569 rows, each class split 3 : 1."""
    from sklearn.datasets import load_breast_cancer

    whole = load_breast_cancer().data.astype(np.float32)
    both = np.concatenate([medical.x_train, medical.x_test])

    assert medical.x_train.shape == (427, 30) and medical.x_test.shape == (142, 30)
    assert medical.x_train.dtype == np.float32
    np.testing.assert_array_equal(np.unique(both, axis=0), np.unique(whole, axis=0))
    assert np.bincount(medical.y_test).tolist() == [89, 53]
    assert np.bincount(medical.y_train).tolist() == [268, 159]


def test_breast_cancer_labels_mark_malignant_as_one(medical: MedicalData) -> None:
    """Label 1 is malignant: 212 of them, with larger tumours than label 0."""
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer()
    x = np.concatenate([medical.x_train, medical.x_test])
    y = np.concatenate([medical.y_train, medical.y_test])
    radius = list(medical.feature_names).index("mean radius")
    is_malignant = table.target == list(table.target_names).index("malignant")

    assert medical.class_names == ("benign", "malignant")
    assert int(y.sum()) == int(is_malignant.sum()) == 212
    assert x[y == 1, radius].mean() > x[y == 0, radius].mean() + 3.0


def test_breast_cancer_mean_std_are_training_statistics(medical: MedicalData) -> None:
    """`mean` and `std` standardise the training split to mean 0, std 1."""
    z = (medical.x_train - medical.mean) / medical.std

    assert medical.mean.shape == medical.std.shape == (30,)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-4)


# ---------------------------------------------------------------------- credit


def test_credit_returns_documented_arrays() -> None:
    """A book has the documented shapes, dtypes, names and label values."""
    data = credit(500, seed=1)

    assert data.data.shape == (500, len(CREDIT_FEATURES)) and len(data) == 500
    assert data.data.dtype == np.float32
    assert data.target.shape == (500,) and set(np.unique(data.target)) <= {0, 1}
    assert data.feature_names == CREDIT_FEATURES
    assert data.drivers == CREDIT_DRIVERS
    assert set(data.drivers) < set(data.feature_names)
    np.testing.assert_array_equal(data.probability, default_probability(data.data))


def test_credit_is_deterministic_for_a_seed() -> None:
    """The same seed gives the same book; another seed gives another."""
    first, second, other = credit(300, seed=7), credit(300, seed=7), credit(300, 8)

    np.testing.assert_array_equal(first.data, second.data)
    np.testing.assert_array_equal(first.target, second.target)
    assert not np.allclose(first.data, other.data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": 2.5}, "n must be a positive integer"),
        ({"n": True}, "n must be a positive integer"),
        ({"n": 4, "seed": -1}, "seed must be a non-negative integer"),
        ({"n": 4, "seed": "a"}, "seed must be a non-negative integer"),
    ],
)
def test_credit_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    """Bad arguments raise a ValueError that names what was expected."""
    with pytest.raises(ValueError, match=message):
        credit(**kwargs)


def test_credit_columns_have_plausible_ranges(book: CreditData) -> None:
    """Each column stays in its documented range; income is right-skewed."""
    column = {name: book.data[:, i] for i, name in enumerate(CREDIT_FEATURES)}
    income = column["income"].astype(np.float64)
    skew = float(np.mean((income - income.mean()) ** 3) / income.std() ** 3)
    log_income = np.log(income)
    log_skew = float(
        np.mean((log_income - log_income.mean()) ** 3) / log_income.std() ** 3
    )

    assert column["age"].min() >= 21 and column["age"].max() <= 75
    assert (column["employment_years"] >= 0).all()
    assert (column["employment_years"] <= column["age"] - 18).all()
    assert 40_000 < np.median(income) < 90_000
    assert skew > 1.0 and abs(log_skew) < 0.3  # log-normal-like
    assert (column["debt_to_income"] >= 0).all()
    assert (column["debt_to_income"] <= 0.95).all()
    assert (column["credit_utilisation"] > 0).all()
    assert (column["credit_utilisation"] < 1).all()
    for count in ("prior_defaults", "open_credit_lines"):
        assert (column[count] >= 0).all()
        np.testing.assert_array_equal(column[count], np.round(column[count]))
    assert np.mean(column["prior_defaults"] == 0) > 0.8
    assert 0.08 < book.target.mean() < 0.25


def test_employment_years_correlate_with_age(book: CreditData) -> None:
    """Employment years rise with age (Pearson r > 0.5)."""
    r = np.corrcoef(
        book.data[:, _column("age")], book.data[:, _column("employment_years")]
    )

    assert r[0, 1] > 0.5


def test_utilisation_correlates_with_debt_to_income(book: CreditData) -> None:
    """Credit utilisation rises with debt-to-income (Pearson r > 0.2)."""
    r = np.corrcoef(
        book.data[:, _column("debt_to_income")],
        book.data[:, _column("credit_utilisation")],
    )

    assert r[0, 1] > 0.2


def test_default_rate_rises_with_debt_to_income(book: CreditData) -> None:
    """The observed default rate rises across debt-to-income quartiles."""
    dti = book.data[:, _column("debt_to_income")]
    quartile = np.digitize(dti, np.quantile(dti, [0.25, 0.5, 0.75]))
    rates = [book.target[quartile == q].mean() for q in range(4)]

    assert np.all(np.diff(rates) > 0.02)
    assert rates[3] > 2.5 * rates[0]


def test_default_rate_falls_with_income(book: CreditData) -> None:
    """Applicants in the top income quartile default less than the bottom one."""
    income = book.data[:, _column("income")]
    low, high = np.quantile(income, [0.25, 0.75])

    assert book.target[income >= high].mean() < book.target[income <= low].mean()


def test_noise_columns_are_independent_of_everything(book: CreditData) -> None:
    """Noise columns correlate with no other column and not with the target."""
    noise = [i for i, name in enumerate(CREDIT_FEATURES) if name.startswith("noise")]
    r = np.corrcoef(np.column_stack([book.data, book.target]).T)

    assert len(noise) >= 3
    for i in noise:
        others = np.delete(r[i], i)
        assert np.abs(others).max() < 0.03


def test_true_probability_depends_only_on_the_drivers(book: CreditData) -> None:
    """Shuffling a non-driver column leaves the true probability unchanged;
    shuffling a driver changes it."""
    rng = np.random.default_rng(0)
    data = book.data[:2000]
    before = default_probability(data)
    for i, name in enumerate(CREDIT_FEATURES):
        shuffled = data.copy()
        shuffled[:, i] = rng.permutation(shuffled[:, i])
        after = default_probability(shuffled)
        if name in CREDIT_DRIVERS:
            assert np.abs(after - before).mean() > 0.01, name
        else:
            np.testing.assert_array_equal(after, before)


def test_true_probability_follows_the_documented_formula() -> None:
    """The log-odds of one hand-made applicant match the docstring's formula."""
    row = dict.fromkeys(CREDIT_FEATURES, 7.0)
    row.update(
        debt_to_income=0.4, credit_utilisation=0.5, prior_defaults=1, income=100_000
    )
    z = -4.2 + 5.5 * 0.4 + 2.5 * 0.5 + 0.9 * 1 - 1.0 * np.log(2.0)

    p = default_probability(np.array([[row[name] for name in CREDIT_FEATURES]]))

    np.testing.assert_allclose(p, [1 / (1 + np.exp(-z))], rtol=1e-12)


def test_targets_are_drawn_from_the_true_probability(book: CreditData) -> None:
    """Within each decile of true probability, the default rate matches it."""
    edges = np.quantile(book.probability, np.linspace(0, 1, 11))
    decile = np.clip(np.digitize(book.probability, edges[1:-1]), 0, 9)
    for d in range(10):
        p = book.probability[decile == d]
        rate = book.target[decile == d].mean()
        standard_error = np.sqrt(p.mean() * (1 - p.mean()) / p.size)
        assert abs(rate - p.mean()) < 4 * standard_error + 1e-3


def test_default_probability_rejects_wrong_columns() -> None:
    """A table with the wrong number of columns is refused with its shape."""
    with pytest.raises(ValueError, match=r"expected data of shape \(N, 11\)"):
        default_probability(np.zeros((3, 5)))


# ---------------------------------------------------------------------- models


LOADERS: list[tuple[str, Callable[..., Any], int, tuple[int, ...]]] = [
    ("medical_encoder", table_models.load_medical_encoder, 30, (64,)),
    ("medical_probe", table_models.load_medical_probe, 30, (2,)),
    ("medical_classifier", table_models.load_medical_classifier, 30, (2,)),
    ("medical_random_probe", table_models.load_medical_random_probe, 30, (2,)),
    ("credit_model", table_models.load_credit_model, 11, (1,)),
]


@pytest.mark.parametrize(("name", "loader", "n_features", "out_shape"), LOADERS)
def test_loaders_work_offline_and_fast(
    no_network: None,
    name: str,
    loader: Callable[..., Any],
    n_features: int,
    out_shape: tuple[int, ...],
) -> None:
    """Each loader builds its functional model offline in under two seconds
    (TensorFlow itself already imported)."""
    import keras

    keras.ops.ones((1,)).numpy()  # start TensorFlow
    started = time.perf_counter()
    model = loader()
    elapsed = time.perf_counter() - started
    outputs = _outputs(model, np.zeros((3, n_features), np.float32))

    assert elapsed < 2.0, f"{name} took {elapsed:.2f} s"
    assert isinstance(model, keras.Model)
    assert model.__class__.__name__ == "Functional"
    assert model.name == name
    assert outputs.shape == (3, *out_shape)
    assert np.isfinite(outputs).all()


def test_public_demo_names_are_the_loaders() -> None:
    """`ssxwidgets.demo` exports this module's data functions and loaders."""
    from ssxwidgets import demo

    assert demo.breast_cancer is breast_cancer and demo.credit is credit
    assert demo.load_medical_probe is table_models.load_medical_probe
    assert demo.load_credit_model is table_models.load_credit_model


def test_loaders_say_how_to_make_missing_weights(tmp_path: Path) -> None:
    """Loading from a folder without weights names the training command."""
    with pytest.raises(FileNotFoundError, match="ssxwidgets.demo.train medical"):
        table_models.load_medical_probe(tmp_path)
    with pytest.raises(FileNotFoundError, match="ssxwidgets.demo.train credit"):
        table_models.model_card("credit_model", tmp_path)


def test_medical_models_standardise_with_the_training_statistics(
    medical: MedicalData,
) -> None:
    """Each medical model's first layer holds MedicalData's mean and variance."""
    for _, loader, n_features, _ in LOADERS:
        if n_features != 30:
            continue
        layer = loader().get_layer("standardise")
        mean, variance = (np.asarray(w) for w in layer.get_weights()[:2])
        np.testing.assert_allclose(mean, medical.mean, rtol=1e-5)
        np.testing.assert_allclose(np.sqrt(variance), medical.std, rtol=1e-4)


def test_probe_contains_the_shipped_encoder(medical: MedicalData) -> None:
    """The probe's embedding layer computes exactly the shipped encoder's output."""
    import keras

    probe = table_models.load_medical_probe()
    encoder = table_models.load_medical_encoder()
    tap = keras.Model(probe.input, probe.get_layer("embedding").output)

    np.testing.assert_allclose(
        _outputs(tap, medical.x_test), _outputs(encoder, medical.x_test), atol=1e-5
    )


def test_model_cards_record_how_each_model_was_made() -> None:
    """Every card names its recipe, data, seed, wall time, scores and versions."""
    for name, *_ in LOADERS:
        card = table_models.model_card(name)
        assert card["model"] == name and card["weights"] == f"{name}.weights.h5"
        assert card["quick"] is False
        for key in ("recipe", "data", "seed", "train_seconds", "metrics", "versions"):
            assert key in card, (name, key)
        assert {"tensorflow", "keras", "numpy"} <= set(card["versions"])
    comparison = table_models.model_card("medical_encoder")["comparison"]
    assert set(comparison) == set(MEDICAL_LOGIT_MODELS)


@pytest.mark.parametrize("name", MEDICAL_LOGIT_MODELS)
def test_medical_weights_reproduce_their_cards(medical: MedicalData, name: str) -> None:
    """Test accuracy and AUC of the shipped weights match the model card."""
    from sklearn.metrics import roc_auc_score

    loader = {row[0]: row[1] for row in LOADERS}[name]
    logits = _outputs(loader(), medical.x_test)
    margin = logits[:, 1] - logits[:, 0]
    stated = _card(name)["metrics"]

    accuracy = np.mean((margin > 0) == (medical.y_test == 1))
    assert accuracy == pytest.approx(stated["test_accuracy"], abs=1 / 142 + 1e-4)
    assert roc_auc_score(medical.y_test, margin) == pytest.approx(
        stated["test_auc"], abs=0.003
    )


def test_medical_encoder_reproduces_its_knn_accuracy(medical: MedicalData) -> None:
    """A 5-nearest-neighbour vote on the shipped embeddings scores as its card says."""
    encoder = table_models.load_medical_encoder()
    train = _outputs(encoder, medical.x_train)
    test = _outputs(encoder, medical.x_test)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    test /= np.linalg.norm(test, axis=1, keepdims=True)
    nearest = np.argsort(-test @ train.T, axis=1)[:, :5]
    votes = medical.y_train[nearest].mean(axis=1) > 0.5

    stated = _card("medical_encoder")["metrics"]["test_knn_accuracy"]
    assert np.mean(votes == medical.y_test) == pytest.approx(stated, abs=1 / 142 + 1e-4)


def test_medical_probe_separates_the_classes(medical: MedicalData) -> None:
    """The shipped probe's test AUC is above 0.95: the encoder learned the task."""
    from sklearn.metrics import roc_auc_score

    logits = _outputs(table_models.load_medical_probe(), medical.x_test)

    assert roc_auc_score(medical.y_test, logits[:, 1] - logits[:, 0]) > 0.95


def test_credit_weights_reproduce_their_card(
    credit_model: Any, credit_test: CreditData
) -> None:
    """The shipped credit model's test AUC and the oracle's match the card."""
    from sklearn.metrics import roc_auc_score

    predicted = _outputs(credit_model, credit_test.data)[:, 0]
    stated = _card("credit_model")["metrics"]

    assert roc_auc_score(credit_test.target, predicted) == pytest.approx(
        stated["test_auc"], abs=0.002
    )
    assert roc_auc_score(credit_test.target, credit_test.probability) == pytest.approx(
        stated["true_probability_test_auc"], abs=1e-4
    )


def test_credit_model_nearly_matches_the_true_probability(
    credit_model: Any, credit_test: CreditData
) -> None:
    """The credit model ranks applicants within 0.02 AUC of the truth, and its
    probabilities track the true ones."""
    from sklearn.metrics import roc_auc_score

    predicted = _outputs(credit_model, credit_test.data)[:, 0]
    oracle = roc_auc_score(credit_test.target, credit_test.probability)

    assert roc_auc_score(credit_test.target, predicted) > oracle - 0.02
    assert np.corrcoef(predicted, credit_test.probability)[0, 1] > 0.9
    assert abs(predicted.mean() - credit_test.target.mean()) < 0.02


def test_credit_model_leans_on_drivers_not_noise(
    credit_model: Any, credit_test: CreditData
) -> None:
    """Permuting a driver moves the predictions more than permuting a noise column."""
    rng = np.random.default_rng(0)
    data = credit_test.data[:4000]
    before = _outputs(credit_model, data)[:, 0]

    def shift(name: str) -> float:
        shuffled = data.copy()
        shuffled[:, _column(name)] = rng.permutation(shuffled[:, _column(name)])
        return float(np.abs(_outputs(credit_model, shuffled)[:, 0] - before).mean())

    noise = max(shift(name) for name in CREDIT_FEATURES if name.startswith("noise"))
    for driver in CREDIT_DRIVERS:
        assert shift(driver) > 3 * noise, driver


# -------------------------------------------------------------------- training


def test_corruption_draws_from_the_column_marginals() -> None:
    """SCARF corruption keeps or replaces each entry with a value of its column,
    replacing about `rate` of them."""
    rng = np.random.default_rng(0)
    pool = (rng.normal(size=(50, 6)) + np.arange(6) * 100).astype(np.float32)
    rows = pool[:20]

    corrupted = train_tables.corrupt(rows, pool, 0.6, np.random.default_rng(1))
    changed = corrupted != rows

    for j in range(6):
        assert np.isin(corrupted[:, j], pool[:, j]).all()
    assert 0.45 < changed.mean() < 0.75


def test_nt_xent_is_lower_for_matching_pairs() -> None:
    """NT-Xent rewards rows paired with their own view over shuffled partners."""
    rng = np.random.default_rng(0)
    z1 = rng.normal(size=(32, 8)).astype(np.float32)
    z2 = z1 + 0.05 * rng.normal(size=z1.shape).astype(np.float32)

    matched = float(train_tables.nt_xent(z1, z2, 0.5))
    shuffled = float(train_tables.nt_xent(z1, z2[rng.permutation(32)], 0.5))

    assert matched < shuffled - 1.0


@pytest.mark.slow
def test_quick_medical_training_completes(tmp_path: Path) -> None:
    """`train medical --quick` writes loadable weights and cards into a folder."""
    from ssxwidgets.demo import train

    train.main(["medical", "--quick", "--out", str(tmp_path)])

    for name in ("medical_encoder", *MEDICAL_LOGIT_MODELS):
        card = _card(name, tmp_path)
        assert card["quick"] is True and "accuracy" in str(card["metrics"])
    probe = table_models.load_medical_probe(tmp_path)
    assert _outputs(probe, np.zeros((2, 30), np.float32)).shape == (2, 2)


@pytest.mark.slow
def test_quick_credit_training_completes(tmp_path: Path) -> None:
    """`train credit --quick` writes a loadable model and its card into a folder."""
    train_tables.train("credit", out=tmp_path, seed=1, quick=True)

    card = _card("credit_model", tmp_path)
    assert card["quick"] is True and card["seed"] == 1
    model = table_models.load_credit_model(tmp_path)
    assert _outputs(model, np.zeros((2, 11), np.float32)).shape == (2, 1)


def test_quick_training_never_overwrites_shipped_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A quick run aimed at the shipped folder is sent to a scratch folder."""
    monkeypatch.setattr(train_tables.tempfile, "mkdtemp", lambda prefix: str(tmp_path))
    seen: list[Path] = []
    monkeypatch.setattr(
        train_tables, "_train_credit", lambda out, seed, quick: seen.append(out) or {}
    )

    train_tables.train("credit", out=WEIGHTS, quick=True)

    assert seen == [tmp_path]
