"""Classical baselines reported beside the encoders, on the same splits.

Classification:

- ``1nn-euclidean``: 1-NN with Euclidean distance on z-normalised series (the
  standard UCR reference, Dau et al., "The UCR time series archive", 2019);
- ``logreg-raw``: the probe's classifier (``--classifier``) on the raw values;
- ``catch22-rf``: the 22 catch22 features of each channel (Lubba et al.,
  "catch22: CAnonical Time-series CHaracteristics", 2019; ``pycatch22``),
  concatenated over channels, a feature that comes out NaN or inf (a
  degenerate series) set to 0, then a random forest of 500 trees (the tsml
  reference setting of the bake-offs; seed 0);
- ``minirocket``: MiniRocket features (Dempster et al., "MiniRocket", KDD
  2021; sktime's ``MiniRocket`` / ``MiniRocketMultivariate``, 10,000 kernels,
  seed 0), standardised, then ``RidgeClassifierCV`` over 10 alphas in
  10^-3..10^3 as in the paper;
- ``1nn-dtw`` (opt-in, slow): 1-NN under DTW in a Sakoe-Chiba band of 10% of
  the length (``s2gen.evaluate.dtw``) on z-normalised series.

All but catch22 need one length: cases are gap-filled and resampled to the
longest train length (to 9 points at least for MiniRocket, whose kernels span
9); catch22 takes each gap-filled series at its own length. A multivariate
case is z-normalised channel by channel. Every baseline is deterministic
given its fixed seed, so it runs once (seed None in the records).

Forecasting: naive (repeat the last value), seasonal naive (repeat the last
season; Hyndman & Athanasopoulos, "Forecasting: principles and practice",
section 5.2) and a ridge regression on the raw context window, normalised
per window like the encoder probe (a linear model in the spirit of DLinear), fitted
as the encoders are under the chosen protocol (``ForecastConfig.protocol``).
"""

from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import RidgeClassifierCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from s2gen.evaluate.dtw import dtw_nearest
from s2gen.evaluate.preprocess import fill_gaps, resample_cases, znormalise
from s2gen.evaluate.protocols import (
    ClassificationConfig,
    ForecastConfig,
    fit_classifier,
    fit_ridge_forecaster,
    fit_ridge_ts2vec,
    forecast_errors,
    make_windows,
    window_scale,
)

CLASSIFICATION_BASELINES = ("1nn-euclidean", "logreg-raw", "catch22-rf", "minirocket")
DTW_BASELINE = "1nn-dtw"
FORECAST_BASELINES = ("naive", "seasonal-naive", "ridge-raw")
BASELINES = (*CLASSIFICATION_BASELINES, DTW_BASELINE, *FORECAST_BASELINES)
SEED = 0  # of the random forest and of MiniRocket's kernels
CATCH22_TREES = 500
MINIROCKET_MIN_LENGTH = 9
RIDGE_ALPHAS = tuple(np.logspace(-3, 3, 10))
DTW_WINDOW = 0.1  # band half-width as a share of the length
EVAL_HINT = "pip install 's2gen[eval]'"


def _fixed_length(
    train_cases: Sequence[np.ndarray], test_cases: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Both splits as (n, C, L) with L the longest train length."""
    length = max(case.shape[1] for case in train_cases)
    return resample_cases(train_cases, length), resample_cases(test_cases, length)


def nn1_euclidean(
    train_cases: Sequence[np.ndarray],
    y_train: np.ndarray,
    test_cases: Sequence[np.ndarray],
    y_test: np.ndarray,
) -> dict:
    """1-NN Euclidean accuracy on z-normalised series.

    Parameters
    ----------
    train_cases, test_cases : arrays of shape (C, L_i), one per case.
    y_train, y_test : class labels.

    Returns
    -------
    {"accuracy": test accuracy}.
    """
    train, test = _fixed_length(train_cases, test_cases)  # (n, C, L) each
    train = znormalise(train).reshape(len(train), -1)  # (n_train, C*L)
    test = znormalise(test).reshape(len(test), -1)  # (n_test, C*L)
    model = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(train, y_train)
    return {"accuracy": float(np.mean(model.predict(test) == y_test))}


def logreg_raw(
    train_cases: Sequence[np.ndarray],
    y_train: np.ndarray,
    test_cases: Sequence[np.ndarray],
    y_test: np.ndarray,
    cfg: ClassificationConfig,
) -> dict:
    """The embedding probe's classifier fitted on the raw series values.

    Parameters
    ----------
    train_cases, test_cases : arrays of shape (C, L_i), one per case.
    y_train, y_test : class labels.
    cfg : the same classifier settings as the probe.

    Returns
    -------
    ``protocols.fit_classifier``'s dict.
    """
    train, test = _fixed_length(train_cases, test_cases)  # (n, C, L) each
    return fit_classifier(
        train.reshape(len(train), -1), y_train, test.reshape(len(test), -1), y_test, cfg
    )


def _accuracy(model, x_test: np.ndarray, y_test: np.ndarray) -> float:
    return float(np.mean(model.predict(x_test) == y_test))


def catch22_features(cases: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """The catch22 features of every channel of every case.

    Parameters
    ----------
    cases : n arrays of shape (C, L_i); NaN gaps are filled first.

    Returns
    -------
    (n, C * 22) float64 features, channel c in columns 22c .. 22c + 21, and
    the number of NaN or inf features that were set to 0.
    """
    try:
        import pycatch22
    except ImportError as error:
        raise ImportError(f"the catch22 baseline needs pycatch22: {EVAL_HINT} ({error})") from None
    rows = [
        [
            v
            for channel in case
            for v in pycatch22.catch22_all(fill_gaps(channel).tolist())["values"]
        ]
        for case in cases
    ]
    features = np.asarray(rows, dtype=np.float64)  # (n, C*22)
    bad = ~np.isfinite(features)
    features[bad] = 0.0
    return features, int(bad.sum())


def catch22_rf(
    train_cases: Sequence[np.ndarray],
    y_train: np.ndarray,
    test_cases: Sequence[np.ndarray],
    y_test: np.ndarray,
) -> dict:
    """Random forest on catch22 features (see the module docstring).

    Returns
    -------
    {"accuracy", "n_estimators", "imputed": features set to 0 in both splits}.
    """
    x_train, bad_train = catch22_features(train_cases)
    x_test, bad_test = catch22_features(test_cases)
    forest = RandomForestClassifier(n_estimators=CATCH22_TREES, random_state=SEED, n_jobs=1)
    forest.fit(x_train, y_train)
    return {
        "accuracy": _accuracy(forest, x_test, y_test),
        "n_estimators": CATCH22_TREES,
        "imputed": bad_train + bad_test,
    }


def minirocket_ridge(
    train_cases: Sequence[np.ndarray],
    y_train: np.ndarray,
    test_cases: Sequence[np.ndarray],
    y_test: np.ndarray,
) -> dict:
    """MiniRocket features -> standardisation -> RidgeClassifierCV (see the module docstring).

    Returns
    -------
    {"accuracy", "alpha": the chosen ridge penalty, "n_features"}.
    """
    try:
        from sktime.transformations.rocket import MiniRocket, MiniRocketMultivariate
    except ImportError as error:
        raise ImportError(f"the MiniRocket baseline needs sktime: {EVAL_HINT} ({error})") from None
    length = max(max(case.shape[1] for case in train_cases), MINIROCKET_MIN_LENGTH)
    train = resample_cases(train_cases, length).astype(np.float32)  # (n, C, L)
    test = resample_cases(test_cases, length).astype(np.float32)
    kind = MiniRocket if train.shape[1] == 1 else MiniRocketMultivariate
    transform = kind(random_state=SEED, n_jobs=1)
    x_train = np.asarray(transform.fit_transform(train), dtype=np.float64)  # (n, ~10,000)
    x_test = np.asarray(transform.transform(test), dtype=np.float64)
    model = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=RIDGE_ALPHAS))
    model.fit(x_train, y_train)
    return {
        "accuracy": _accuracy(model, x_test, y_test),
        "alpha": float(model[-1].alpha_),
        "n_features": int(x_train.shape[1]),
    }


def nn1_dtw(
    train_cases: Sequence[np.ndarray],
    y_train: np.ndarray,
    test_cases: Sequence[np.ndarray],
    y_test: np.ndarray,
    window: float = DTW_WINDOW,
) -> dict:
    """1-NN under DTW_D in a Sakoe-Chiba band on z-normalised series.

    Parameters
    ----------
    train_cases, test_cases : arrays of shape (C, L_i), one per case.
    y_train, y_test : class labels.
    window : band half-width as a share of the common length L; the band
        admits |i - j| <= floor(window * L).

    Returns
    -------
    {"accuracy", "window": the half-width in points}.
    """
    if not 0.0 <= window <= 1.0:
        raise ValueError(f"window={window} must be a share of the length in [0, 1]")
    train, test = _fixed_length(train_cases, test_cases)  # (n, C, L) each
    points = int(np.floor(window * train.shape[2]))
    index, _ = dtw_nearest(znormalise(train), znormalise(test), points)
    prediction = np.asarray(y_train)[index]
    return {"accuracy": float(np.mean(prediction == y_test)), "window": points}


def naive_forecast(context: np.ndarray, horizon: int) -> np.ndarray:
    """Repeat each window's last value: (n, context) -> (n, H)."""
    return np.repeat(context[:, -1:], horizon, axis=1)


def seasonal_naive_forecast(
    series: np.ndarray, origins: np.ndarray, horizon: int, period: int
) -> np.ndarray:
    """Repeat the last observed season: value t+h is value t+h-k*period.

    k is the smallest whole number with t+h-k*period < t, so only values
    before the origin t are used; they may lie before the context window.

    Parameters
    ----------
    series : (T,) series.
    origins : (n,) forecast origins t (index of the first predicted value).
    horizon : H.
    period : seasonal period in steps.

    Returns
    -------
    (n, H) forecasts.
    """
    if origins.min() < period:
        raise ValueError(
            f"period={period} reaches before the series start for origin {origins.min()}; "
            "use a longer series or a smaller period"
        )
    steps = np.arange(horizon)
    lag = period * (steps // period + 1)  # (H,)
    return series[origins[:, None] + steps[None, :] - lag[None, :]]  # (n, H)


def forecast_baselines(values: np.ndarray, period: int | None, cfg: ForecastConfig) -> dict:
    """Errors of the forecasting baselines on the probe's windows.

    Parameters
    ----------
    values : (T,) series without gaps.
    period : seasonal period, or None to leave seasonal naive out.
    cfg : the probe's windowing and ridge settings.

    Returns
    -------
    {baseline name: {"mse", "mae", ...}}; "seasonal-naive" only with a period.
    """
    windows = make_windows(values, cfg)
    results = {
        "naive": forecast_errors(
            naive_forecast(windows.test_context, cfg.horizon), windows.test_target
        )
    }
    if period is not None and period > 1:
        prediction = seasonal_naive_forecast(
            windows.series, windows.test_origins, cfg.horizon, period
        )
        results["seasonal-naive"] = forecast_errors(prediction, windows.test_target)
    mu_train, sd_train = window_scale(windows.train_context)  # (n_train, 1)
    mu_test, sd_test = window_scale(windows.test_context)  # (n_test, 1)
    train = (windows.train_context - mu_train) / sd_train
    test = (windows.test_context - mu_test) / sd_test
    if cfg.protocol == "ts2vec":  # the encoders' ridge procedure, on the raw windows
        results["ridge-raw"] = fit_ridge_ts2vec(train, windows, test)
    else:
        results["ridge-raw"] = fit_ridge_forecaster(train, windows, test, cfg)
    return results
