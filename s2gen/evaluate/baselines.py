"""Classical baselines reported beside the encoders, on the same splits.

Classification: 1-NN with Euclidean distance on z-normalised series (the
standard UCR reference, Dau et al., "The UCR time series archive", 2019) and
logistic regression on the raw series. Both need one length: cases are
gap-filled and resampled to the longest train length; a multivariate case is
z-normalised channel by channel and its channels are concatenated.

Forecasting: naive (repeat the last value), seasonal naive (repeat the last
season; Hyndman & Athanasopoulos, "Forecasting: principles and practice",
section 5.2) and a ridge regression on the raw context window, normalised
per window like the encoder probe (a linear model in the spirit of DLinear).
"""

from collections.abc import Sequence

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from s2gen.evaluate.preprocess import resample_cases, znormalise
from s2gen.evaluate.protocols import (
    ClassificationConfig,
    ForecastConfig,
    fit_classifier,
    fit_ridge_forecaster,
    forecast_errors,
    make_windows,
    window_scale,
)

CLASSIFICATION_BASELINES = ("1nn-euclidean", "logreg-raw")
FORECAST_BASELINES = ("naive", "seasonal-naive", "ridge-raw")


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
    results["ridge-raw"] = fit_ridge_forecaster(
        (windows.train_context - mu_train) / sd_train,
        windows,
        (windows.test_context - mu_test) / sd_test,
        cfg,
    )
    return results
