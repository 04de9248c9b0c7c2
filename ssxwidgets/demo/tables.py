"""Tabular demo data: a real medical table and a generated credit book.

Usage::

    from ssxwidgets.demo.tables import breast_cancer, credit, default_probability
    med = breast_cancer()          # fixed stratified split, 1 = malignant
    book = credit(1000, seed=0)    # (1000, 11) applicants, 1 = defaulted
    p = default_probability(book.data)   # the true probability, (1000,)

``breast_cancer`` wraps the Wisconsin diagnostic breast-cancer table that ships
inside scikit-learn (no download). ``credit`` draws synthetic applicants whose
default risk is a known logistic function of four of their features, so an
explanation of a model trained on it can be checked against the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CREDIT_DRIVERS",
    "CREDIT_FEATURES",
    "MEDICAL_CLASS_NAMES",
    "CreditData",
    "MedicalData",
    "breast_cancer",
    "credit",
    "default_probability",
]

MEDICAL_CLASS_NAMES: tuple[str, str] = ("benign", "malignant")
"""Class names of :func:`breast_cancer`, indexed by label (1 = malignant)."""

MEDICAL_TEST_FRACTION = 0.25
MEDICAL_SPLIT_SEED = 0

CREDIT_FEATURES: tuple[str, ...] = (
    "age",
    "income",
    "employment_years",
    "debt_to_income",
    "credit_utilisation",
    "open_credit_lines",
    "prior_defaults",
    "loan_amount",
    "noise_1",
    "noise_2",
    "noise_3",
)
"""Column names of :attr:`CreditData.data`, in order."""

CREDIT_DRIVERS: tuple[str, ...] = (
    "debt_to_income",
    "credit_utilisation",
    "prior_defaults",
    "income",
)
"""The features the true default probability is a function of."""

# Coefficients of the true log-odds of default; see `default_probability`.
_INTERCEPT = -4.2
_W_DEBT_TO_INCOME = 5.5
_W_UTILISATION = 2.5
_W_PRIOR_DEFAULTS = 0.9
_W_LOG_INCOME = -1.0
_REFERENCE_INCOME = 50_000.0


@dataclass(frozen=True)
class MedicalData:
    """The breast-cancer table with its fixed stratified train/test split.

    Labels follow ``class_names``: **0 = benign, 1 = malignant**. This is the
    reverse of scikit-learn's ``load_breast_cancer`` target (0 = malignant),
    chosen so that the positive class is the finding a clinician looks for.

    Attributes
    ----------
    x_train, x_test
        Raw (unstandardised) features, ``(N, 30)`` float32, in the units of the
        original table. Models from :mod:`ssxwidgets.demo` take these as they are.
    y_train, y_test
        Labels ``(N,)`` int64, 1 = malignant.
    feature_names
        The 30 column names, e.g. ``"mean radius"``.
    class_names
        ``("benign", "malignant")``.
    mean, std
        ``(30,)`` float32: the per-feature mean and population standard
        deviation of ``x_train``, the standardisation the demo models apply
        inside themselves (``(x - mean) / std``).
    """

    x_train: NDArray[np.float32]
    x_test: NDArray[np.float32]
    y_train: NDArray[np.int64]
    y_test: NDArray[np.int64]
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    mean: NDArray[np.float32]
    std: NDArray[np.float32]


@dataclass(frozen=True)
class CreditData:
    """A book of synthetic loan applicants with a known default mechanism.

    Attributes
    ----------
    data
        ``(N, F)`` float32 raw features, columns in ``feature_names`` order
        (see :func:`credit` for units and distributions).
    target
        ``(N,)`` int64, 1 = the applicant defaulted, drawn from ``probability``.
    probability
        ``(N,)`` float64: the true default probability of each applicant,
        ``default_probability(data)``.
    feature_names
        Column names, :data:`CREDIT_FEATURES`.
    drivers
        The features the default risk is a function of,
        :data:`CREDIT_DRIVERS`; every other column leaves it unchanged.
    seed
        The seed the book was drawn with.
    """

    data: NDArray[np.float32]
    target: NDArray[np.int64]
    probability: NDArray[np.float64]
    feature_names: tuple[str, ...]
    drivers: tuple[str, ...]
    seed: int

    def __len__(self) -> int:
        """The number of applicants."""
        return len(self.target)


def breast_cancer() -> MedicalData:
    """Return the Wisconsin breast-cancer table with a fixed stratified split.

    569 patients, 30 real-valued features computed from images of a fine
    needle aspirate (W. N. Street, W. H. Wolberg and O. L. Mangasarian,
    "Nuclear feature extraction for breast tumor diagnosis", 1993), read from
    the copy bundled with scikit-learn, so nothing is downloaded.

    The split is fixed: a quarter of each class goes to the test set (142
    patients, 53 malignant), chosen by a seeded permutation, so every call and
    every machine gets the same rows. The demo models were trained on
    ``x_train`` only.

    Returns
    -------
    MedicalData
        Labels 1 = malignant, 0 = benign (scikit-learn uses the reverse).
    """
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer()
    x = np.asarray(table.data, dtype=np.float32)
    y = (np.asarray(table.target) == 0).astype(np.int64)  # sklearn: 0 = malignant

    rng = np.random.default_rng(MEDICAL_SPLIT_SEED)
    test_rows = []
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        n_test = round(MEDICAL_TEST_FRACTION * rows.size)
        test_rows.append(rng.permutation(rows)[:n_test])
    is_test = np.zeros(y.size, dtype=bool)
    is_test[np.concatenate(test_rows)] = True

    x_train = x[~is_test]
    return MedicalData(
        x_train=x_train,
        x_test=x[is_test],
        y_train=y[~is_test],
        y_test=y[is_test],
        feature_names=tuple(str(name) for name in table.feature_names),
        class_names=MEDICAL_CLASS_NAMES,
        mean=x_train.mean(axis=0, dtype=np.float64).astype(np.float32),
        std=x_train.std(axis=0, dtype=np.float64).astype(np.float32),
    )


def credit(n: int, seed: int = 0) -> CreditData:
    """Draw ``n`` synthetic loan applicants and whether each defaulted.

    Columns (:data:`CREDIT_FEATURES`) and how they are drawn:

    - ``age``: whole years, ``21 + 54 * Beta(2, 3)`` (21–74, mean ~42).
    - ``employment_years``: years with the current employer, a
      ``Beta(1.6, 2.2)`` share of the years since 18, so it rises with age
      (correlation ~0.6).
    - ``income``: yearly, in dollars, log-normal: ``log income`` is
      ``log 42 000 + 0.012 * employment_years`` plus a hump in age peaking at
      52, plus ``Normal(0, 0.45)`` (median ~63 000).
    - ``debt_to_income``: share of income going to debt service,
      ``0.9 * Beta(2, 5)``, a little lower for higher incomes, in [0, 0.95].
    - ``credit_utilisation``: share of revolving credit in use, in (0, 1),
      the logistic of a normal that rises with ``debt_to_income``
      (correlation ~0.35).
    - ``open_credit_lines``: a Poisson count growing with age and income.
    - ``prior_defaults``: a Poisson count, more likely at high utilisation;
      mostly 0.
    - ``loan_amount``: dollars, income times a log-normal factor (median 0.25),
      1 000–150 000.
    - ``noise_1`` ~ Normal(0, 1), ``noise_2`` ~ Uniform(0, 1), ``noise_3``
      uniform on the integers 0–9: independent of everything.

    The target is drawn as ``Bernoulli(default_probability(data))``; see
    :func:`default_probability` for the formula. About 16 % default, and the
    true probability reaches a ROC AUC of about 0.82 on its own labels.

    Parameters
    ----------
    n
        Number of applicants.
    seed
        Seed of the generator; the same ``(n, seed)`` always gives the same book.

    Returns
    -------
    CreditData
        ``data`` ``(n, 11)`` float32, ``target`` ``(n,)`` int64 (1 = defaulted).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n, seed = int(n), int(seed)
    rng = np.random.default_rng(seed)

    age = np.floor(21.0 + 54.0 * rng.beta(2.0, 3.0, n))
    employment = np.minimum((age - 18.0) * rng.beta(1.6, 2.2, n), 45.0)
    employment = np.round(employment, 1)
    age_hump = 1.0 - ((age - 52.0) / 32.0) ** 2
    log_income = (
        np.log(42_000.0)
        + 0.35 * age_hump
        + 0.012 * employment
        + rng.normal(0.0, 0.45, n)
    )
    income = np.round(np.exp(log_income), -1)
    debt_to_income = 0.9 * rng.beta(2.0, 5.0, n) * (income / 50_000.0) ** -0.15
    debt_to_income = np.clip(debt_to_income, 0.0, 0.95)
    utilisation_logit = -1.0 + 3.0 * (debt_to_income - 0.25) + rng.normal(0, 1.1, n)
    utilisation = 1.0 / (1.0 + np.exp(-utilisation_logit))
    lines_rate = 1.5 + 0.07 * (age - 21.0) + 0.8 * np.log(income / 50_000.0)
    open_lines = rng.poisson(np.clip(lines_rate, 0.2, None))
    prior_defaults = rng.poisson(0.04 + 0.3 * utilisation)
    loan_factor = np.exp(rng.normal(np.log(0.25), 0.5, n))
    loan_amount = np.clip(np.round(income * loan_factor, -2), 1_000.0, 150_000.0)
    noise = [rng.normal(0.0, 1.0, n), rng.random(n), rng.integers(0, 10, n)]

    columns = [
        age,
        income,
        employment,
        debt_to_income,
        utilisation,
        open_lines,
        prior_defaults,
        loan_amount,
        *noise,
    ]
    data = np.stack(columns, axis=1).astype(np.float32)
    probability = default_probability(data)
    target = (rng.random(n) < probability).astype(np.int64)
    return CreditData(
        data=data,
        target=target,
        probability=probability,
        feature_names=CREDIT_FEATURES,
        drivers=CREDIT_DRIVERS,
        seed=seed,
    )


def default_probability(data: ArrayLike) -> NDArray[np.float64]:
    """Return the true probability of default of each applicant.

    ``p = 1 / (1 + exp(-z))`` with the log-odds

    ``z = -4.2 + 5.5 * debt_to_income + 2.5 * credit_utilisation
    + 0.9 * prior_defaults - 1.0 * ln(income / 50 000)``.

    No other column enters: age, employment years, open credit lines and the
    loan amount are correlated with the drivers but do not cause default, and
    the noise columns are independent of everything.

    Parameters
    ----------
    data
        ``(N, F)`` raw features in :data:`CREDIT_FEATURES` order, or one
        applicant ``(F,)``.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float64 probabilities (``()`` for one applicant).
    """
    x = np.asarray(data, dtype=np.float64)
    if x.shape[-1:] != (len(CREDIT_FEATURES),):
        raise ValueError(
            f"expected data of shape (N, {len(CREDIT_FEATURES)}) with columns "
            f"{CREDIT_FEATURES}, got shape {x.shape}"
        )
    column = {name: x[..., i] for i, name in enumerate(CREDIT_FEATURES)}
    income = np.maximum(column["income"], 1.0)
    z = (
        _INTERCEPT
        + _W_DEBT_TO_INCOME * column["debt_to_income"]
        + _W_UTILISATION * column["credit_utilisation"]
        + _W_PRIOR_DEFAULTS * column["prior_defaults"]
        + _W_LOG_INCOME * np.log(income / _REFERENCE_INCOME)
    )
    return 1.0 / (1.0 + np.exp(-z))
