"""Frozen-encoder probes: linear classification and ridge forecasting.

A model enters as an ``embed`` callable that maps n univariate series (an
(n, L) array, or a list of 1-D arrays of different lengths) to an (n, dim)
array: ``SeriesEncoder.embed`` of ``s2gen.pretrain``, or any stand-in.

Classification (the linear-evaluation protocol of TS2Vec, Yue et al. 2022,
section 4.1, and its successors): the frozen embeddings of the train split
fit a logistic regression (or an RBF SVM) whose C is chosen by stratified
cross-validation on the train split alone, or a random forest of 200 trees
without a search (the head Mantis reports, Feofanov et al. 2025, with the
200 trees of its published example; seed 0); accuracy is measured on the
test split. A multivariate case is embedded channel by channel and the C
per-channel embeddings are concatenated, so its feature vector has C * dim
entries in channel order.

Forecasting (TS2Vec section 4.2, adapted to an instance-normalising encoder):
the series is z-normalised with the mean and standard deviation of its first
``1 - test_fraction`` part (the train part). A window of ``context`` steps
ending at time t is embedded, and a ridge regression maps the embedding to
the next ``horizon`` values expressed in units of that window (minus the
window's mean, divided by its standard deviation, as RevIN does), because the
encoder normalises each input and so cannot see level or scale. Ridge alpha
is chosen by time-ordered cross-validation on the train windows. Test windows
are those whose forecast origin lies in the test tail; MSE and MAE are
averaged over all test windows and horizon steps on the z-normalised series.
This is the ``window`` protocol (``ForecastConfig.protocol``).

The ``ts2vec`` protocol (TS2Vec section 4.2) forecasts from the representation of
the last timestamp instead: the state of the context window's last token (the
last patch's state for a patch backbone, the last step's for a per-step one;
TS2Vec encodes each timestamp from a causal window, as the context window here).
As TS2Vec, the ridge has no feature scaling and its alpha is chosen from
{0.1, 0.2, 0.5, 1, ..., 500, 1000} by RMSE + MAE on a validation segment (the last
quarter of the train windows, so 60/20/20 with the default test share, TS2Vec's
ETT split), then refitted on the windows before it. Targets are in units of the
context window as in the ``window`` protocol, since the encoder normalises its input.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, StratifiedKFold, TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from s2gen.evaluate.preprocess import EPS, fill_gaps

log = logging.getLogger(__name__)

Embed = Callable[[np.ndarray | list[np.ndarray]], np.ndarray]
CLASSIFIERS = ("logreg", "svm", "rf")
C_GRID = tuple(10.0**k for k in range(-4, 5))  # TS2Vec's SVM grid, without C = inf
ALPHA_GRID = tuple(10.0**k for k in range(-2, 5))
TS2VEC_ALPHAS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)  # TS2Vec's ridge grid
TS2VEC_VALIDATION = 0.25  # share of the train windows (the last ones) that choose alpha
FORECAST_PROTOCOLS = ("window", "ts2vec")


@dataclass(frozen=True)
class ClassificationConfig:
    """How the linear classifier on top of the features is fitted.

    Attributes
    ----------
    classifier : "logreg" (multinomial logistic regression), "svm" (RBF SVC)
        or "rf" (random forest, no search).
    cv_folds : stratified folds for choosing C on the train split; fewer when
        the smallest class has fewer members, and a fixed C = 1 when it has one.
    c_grid : candidate values of the inverse regularisation C.
    max_iter : solver iterations for the logistic regression.
    rf_trees : trees of the random forest.
    rf_seed : seed of the random forest (fixed, so that a deterministic
        encoder gives one result).
    """

    classifier: str = "logreg"
    cv_folds: int = 5
    c_grid: tuple[float, ...] = C_GRID
    max_iter: int = 2000
    rf_trees: int = 200
    rf_seed: int = 0

    def __post_init__(self):
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier={self.classifier!r}: choose one of {CLASSIFIERS}")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds={self.cv_folds} must be at least 2")
        if not self.c_grid or min(self.c_grid) <= 0:
            raise ValueError(f"c_grid={self.c_grid} must be non-empty and positive")
        if self.max_iter < 1:
            raise ValueError(f"max_iter={self.max_iter} must be at least 1")
        if self.rf_trees < 1:
            raise ValueError(f"rf_trees={self.rf_trees} must be at least 1")


@dataclass(frozen=True)
class ForecastConfig:
    """Windowing and ridge settings of the forecasting probe.

    Attributes
    ----------
    horizon : H, values predicted after each context window.
    context : steps in each context window.
    test_fraction : share of the series (its tail) whose origins are tested.
    alpha_grid : candidate ridge penalties.
    cv_folds : time-ordered folds for choosing alpha.
    min_train_windows : fewer train windows than this is an error.
    protocol : "window" (the pooled embedding of the context window, alpha by
        time-ordered CV) or "ts2vec" (the last token's state, TS2Vec's alpha grid
        chosen on a validation segment); see the module docstring.
    """

    horizon: int
    context: int = 48
    test_fraction: float = 0.2
    alpha_grid: tuple[float, ...] = ALPHA_GRID
    cv_folds: int = 3
    min_train_windows: int = 10
    protocol: str = "window"

    def __post_init__(self):
        if self.horizon < 1:
            raise ValueError(f"horizon={self.horizon} must be at least 1")
        if self.context < 2:
            raise ValueError(f"context={self.context} must be at least 2")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction={self.test_fraction} must be in (0, 1)")
        if not self.alpha_grid or min(self.alpha_grid) <= 0:
            raise ValueError(f"alpha_grid={self.alpha_grid} must be non-empty and positive")
        if self.cv_folds < 2:
            raise ValueError(f"cv_folds={self.cv_folds} must be at least 2")
        if self.min_train_windows < self.cv_folds + 1:
            raise ValueError(
                f"min_train_windows={self.min_train_windows} must exceed cv_folds={self.cv_folds}"
            )
        if self.protocol not in FORECAST_PROTOCOLS:
            raise ValueError(
                f"protocol={self.protocol!r}: choose one of {', '.join(FORECAST_PROTOCOLS)}"
            )


# ---------------------------------------------------------------- classification


def embed_cases(embed: Embed, cases: Sequence[np.ndarray]) -> np.ndarray:
    """Embed multichannel cases channel by channel and concatenate.

    Parameters
    ----------
    embed : maps n univariate series to (n, dim).
    cases : n arrays of shape (C, L_i); NaN gaps are filled by interpolation.

    Returns
    -------
    (n, C * dim) float64, channel c of case i in columns c*dim .. (c+1)*dim.
    """
    n_channels = cases[0].shape[0]
    flat = [fill_gaps(case[c]) for case in cases for c in range(n_channels)]  # n*C, case-major
    if len({row.size for row in flat}) == 1:
        batch = np.stack(flat).astype(np.float32)  # (n*C, L)
    else:
        batch = [row.astype(np.float32) for row in flat]
    z = np.asarray(embed(batch), dtype=np.float64)  # (n*C, dim)
    if z.ndim != 2 or z.shape[0] != len(flat):
        raise ValueError(f"embed returned shape {z.shape}; expected ({len(flat)}, dim)")
    return z.reshape(len(cases), n_channels * z.shape[1])  # (n, C*dim)


def _classifier(cfg: ClassificationConfig):
    if cfg.classifier == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=cfg.max_iter))
    return make_pipeline(StandardScaler(), SVC(kernel="rbf", gamma="scale"))


def fit_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    cfg: ClassificationConfig,
) -> dict:
    """Fit the classifier on train features (C chosen by CV but for "rf"); score test.

    Parameters
    ----------
    x_train, x_test : (n_train, F), (n_test, F) features.
    y_train, y_test : (n_train,), (n_test,) labels.
    cfg : classifier settings.

    Returns
    -------
    {"accuracy": test accuracy, "C": the chosen C, "cv_folds": folds used (0 = no CV)};
    for "rf" {"accuracy", "n_estimators", "cv_folds": 0}.
    """
    if not (np.isfinite(x_train).all() and np.isfinite(x_test).all()):
        raise ValueError("features hold NaN or inf; check the encoder's output")
    _, counts = np.unique(y_train, return_counts=True)
    if counts.size < 2:
        raise ValueError("y_train holds a single class; a classifier needs at least two")
    if cfg.classifier == "rf":
        forest = RandomForestClassifier(
            n_estimators=cfg.rf_trees, random_state=cfg.rf_seed, n_jobs=1
        ).fit(x_train, y_train)
        accuracy = float(np.mean(forest.predict(x_test) == y_test))
        return {"accuracy": accuracy, "n_estimators": cfg.rf_trees, "cv_folds": 0}
    folds = min(cfg.cv_folds, int(counts.min()))
    model = _classifier(cfg)
    step = model.steps[-1][0]
    if folds >= 2:
        search = GridSearchCV(
            model,
            {f"{step}__C": list(cfg.c_grid)},
            cv=StratifiedKFold(n_splits=folds),
            n_jobs=1,
        )
        search.fit(x_train, y_train)
        model, chosen = search.best_estimator_, search.best_params_[f"{step}__C"]
    else:
        log.info("smallest class has one member: no cross-validation, C = 1")
        model.fit(x_train, y_train)
        folds, chosen = 0, 1.0
    accuracy = float(np.mean(model.predict(x_test) == y_test))
    return {"accuracy": accuracy, "C": float(chosen), "cv_folds": folds}


def classification_probe(
    embed: Embed,
    train_cases: Sequence[np.ndarray],
    y_train: np.ndarray,
    test_cases: Sequence[np.ndarray],
    y_test: np.ndarray,
    cfg: ClassificationConfig,
) -> dict:
    """Linear evaluation of frozen embeddings: fit on train, accuracy on test.

    Parameters
    ----------
    embed : the frozen model.
    train_cases, test_cases : arrays of shape (C, L_i), one per case.
    y_train, y_test : class labels.
    cfg : classifier settings.

    Returns
    -------
    ``fit_classifier``'s dict plus "dim", the feature width C * dim.
    """
    z_train = embed_cases(embed, train_cases)  # (n_train, C*dim)
    z_test = embed_cases(embed, test_cases)  # (n_test, C*dim)
    result = fit_classifier(z_train, y_train, z_test, y_test, cfg)
    return {**result, "dim": int(z_train.shape[1])}


# ---------------------------------------------------------------- forecasting


@dataclass(frozen=True)
class ForecastWindows:
    """Context/target windows of one series, split by forecast origin.

    Attributes
    ----------
    train_context, test_context : (n_train, context), (n_test, context)
        windows of the z-normalised series.
    train_target, test_target : (n_train, H), (n_test, H) the values that follow.
    series : (T,) the whole z-normalised series.
    test_origins : (n_test,) index in ``series`` of each test target's first value.
    """

    train_context: np.ndarray
    train_target: np.ndarray
    test_context: np.ndarray
    test_target: np.ndarray
    series: np.ndarray
    test_origins: np.ndarray


def _windows(z: np.ndarray, origins: np.ndarray, context: int, horizon: int):
    ctx = np.stack([z[t - context : t] for t in origins])  # (n, context)
    tgt = np.stack([z[t : t + horizon] for t in origins])  # (n, H)
    return ctx, tgt


def make_windows(values: np.ndarray, cfg: ForecastConfig) -> ForecastWindows:
    """Z-normalise by the train part and cut context/target windows.

    The train part is the first ``round(T * (1 - test_fraction))`` steps; a
    train window's target lies inside it, a test window's origin lies after it
    (its context may reach back into the train part).

    Parameters
    ----------
    values : (T,) series without gaps.
    cfg : windowing settings.
    """
    values = np.asarray(values, dtype=np.float64)
    size = values.size
    split = int(round(size * (1.0 - cfg.test_fraction)))
    train_origins = np.arange(cfg.context, split - cfg.horizon + 1)
    test_origins = np.arange(max(split, cfg.context), size - cfg.horizon + 1)
    if train_origins.size < cfg.min_train_windows or test_origins.size < 1:
        raise ValueError(
            f"a series of {size} steps gives {train_origins.size} train and "
            f"{test_origins.size} test windows with context={cfg.context}, "
            f"horizon={cfg.horizon}, test_fraction={cfg.test_fraction}; need at least "
            f"{cfg.min_train_windows} and 1: shorten context or horizon"
        )
    mean, std = values[:split].mean(), max(values[:split].std(), EPS)
    z = (values - mean) / std  # (T,)
    train_context, train_target = _windows(z, train_origins, cfg.context, cfg.horizon)
    test_context, test_target = _windows(z, test_origins, cfg.context, cfg.horizon)
    return ForecastWindows(train_context, train_target, test_context, test_target, z, test_origins)


def window_scale(context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-window mean and standard deviation, each (n, 1), std floored at 1e-8."""
    return context.mean(axis=1, keepdims=True), np.maximum(context.std(axis=1, keepdims=True), EPS)


def forecast_errors(prediction: np.ndarray, target: np.ndarray) -> dict:
    """MSE and MAE over all windows and horizon steps; both arrays (n, H)."""
    error = prediction - target
    return {"mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error)))}


def fit_ridge_forecaster(
    train_features: np.ndarray,
    windows: ForecastWindows,
    test_features: np.ndarray,
    cfg: ForecastConfig,
) -> dict:
    """Ridge from features to the window-normalised next H values; test errors.

    Parameters
    ----------
    train_features, test_features : (n_train, F), (n_test, F).
    windows : the windows the features were computed from.
    cfg : ridge settings.

    Returns
    -------
    {"mse", "mae", "alpha"} on the z-normalised series.
    """
    mu_train, sd_train = window_scale(windows.train_context)  # (n_train, 1) each
    target = (windows.train_target - mu_train) / sd_train  # (n_train, H)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), Ridge()),
        {"ridge__alpha": list(cfg.alpha_grid)},
        cv=TimeSeriesSplit(n_splits=cfg.cv_folds),
        scoring="neg_mean_squared_error",
        n_jobs=1,
    )
    search.fit(train_features, target)
    mu_test, sd_test = window_scale(windows.test_context)  # (n_test, 1) each
    prediction = search.predict(test_features) * sd_test + mu_test  # (n_test, H)
    errors = forecast_errors(prediction, windows.test_target)
    return {**errors, "alpha": float(search.best_params_["ridge__alpha"])}


def fit_ridge_ts2vec(
    train_features: np.ndarray, windows: ForecastWindows, test_features: np.ndarray
) -> dict:
    """TS2Vec's ridge: alpha by RMSE + MAE on a validation segment, fitted on the train before it.

    Parameters
    ----------
    train_features, test_features : (n_train, F), (n_test, F).
    windows : the windows the features were computed from.

    Returns
    -------
    {"mse", "mae", "alpha", "n_val"} on the z-normalised series.
    """
    n_val = max(1, int(round(TS2VEC_VALIDATION * len(train_features))))
    fit, val = slice(0, len(train_features) - n_val), slice(len(train_features) - n_val, None)
    mu, sd = window_scale(windows.train_context)  # (n_train, 1) each
    target = (windows.train_target - mu) / sd  # (n_train, H)
    scores = []
    for alpha in TS2VEC_ALPHAS:
        model = Ridge(alpha=alpha).fit(train_features[fit], target[fit])
        error = model.predict(train_features[val]) * sd[val] + mu[val] - windows.train_target[val]
        scores.append(np.sqrt(np.mean(error**2)) + np.mean(np.abs(error)))
    alpha = TS2VEC_ALPHAS[int(np.argmin(scores))]
    model = Ridge(alpha=alpha).fit(train_features[fit], target[fit])
    mu_test, sd_test = window_scale(windows.test_context)  # (n_test, 1) each
    prediction = model.predict(test_features) * sd_test + mu_test  # (n_test, H)
    errors = forecast_errors(prediction, windows.test_target)
    return {**errors, "alpha": float(alpha), "n_val": n_val}


def last_token_features(embed: Embed, context: np.ndarray) -> np.ndarray:
    """The state of each context window's last token, (n, d) float64 (needs ``last_token``)."""
    if not hasattr(embed, "last_token"):
        raise ValueError(
            "the ts2vec protocol needs an encoder's token states; give --checkpoint or "
            "--random-init, or use --protocol window"
        )
    return np.asarray(embed.last_token(context.astype(np.float32)), np.float64)


def forecasting_probe(embed: Embed, values: np.ndarray, cfg: ForecastConfig) -> dict:
    """Ridge forecasting from frozen representations of the context window.

    Parameters
    ----------
    embed : the frozen model (with ``last_token`` for the ts2vec protocol).
    values : (T,) series without gaps.
    cfg : windowing, ridge and protocol settings.

    Returns
    -------
    {"mse", "mae", "alpha", "dim", "n_train", "n_test", "protocol"} (and "n_val" for ts2vec).
    """
    windows = make_windows(values, cfg)
    if cfg.protocol == "ts2vec":
        train_features = last_token_features(embed, windows.train_context)
        test_features = last_token_features(embed, windows.test_context)
        result = fit_ridge_ts2vec(train_features, windows, test_features)
    else:
        train_features = np.asarray(embed(windows.train_context.astype(np.float32)), np.float64)
        test_features = np.asarray(embed(windows.test_context.astype(np.float32)), np.float64)
        result = fit_ridge_forecaster(train_features, windows, test_features, cfg)
    return {
        **result,
        "dim": int(train_features.shape[1]),
        "n_train": int(windows.train_context.shape[0]),
        "n_test": int(windows.test_context.shape[0]),
        "protocol": cfg.protocol,
    }
