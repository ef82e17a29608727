"""The SNR gate of TSIS: a window's noise from the floor of its periodogram.

For a window x of L points, centred, with the periodic Hann taper w_t:

    I_k    = |sum_t w_t x_t exp(-2 pi i k t / L)|^2 / sum_t w_t^2
    total  = sum_t w_t^2 x_t^2 / sum_t w_t^2 = mean_k I_k      (Parseval)
    noise  = median of I_k over 2 <= k <= L/2 - 2, / ln 2     (the white-noise variance)
    SNR_dB = 10 log10((total - noise) / noise)                (-inf when total <= noise)

The total is the tapered variance, so that a spike the taper hides from the
periodogram is hidden from the total as well.

Gated samples (``snr_gate``) get TSIS = -inf: they never guide generation.

Notes
-----
Why it separates noise from structure:

- Gaussian white noise of variance s^2: the tapered DFT coefficient at
  2 <= k <= L/2 - 2 is a circular complex Gaussian (the Hann taper's squared
  window has DFT support {0, +-1, +-2}, so the real and imaginary parts are
  uncorrelated with equal variance), hence I_k ~ s^2 Exp(1) exactly, with
  median s^2 ln 2. Neighbouring ordinates are correlated but the marginal
  median is unbiased, so noise ~ s^2 ~ total and SNR is very negative or
  -inf. Brockwell & Davis (1991), Time Series: Theory and Methods, section
  10.3 (periodogram ordinates of white noise are exponential); the median with
  its ln 2 bias factor is the robust noise floor of median PSD estimation
  (Allen et al. 2012, FINDCHIRP, Phys. Rev. D 85, 122006).
- A noise-free signal whose power sits in fewer than half of the Fourier
  frequencies (a sinusoid of any period from 2 to L/2, square, triangle and
  sawtooth waves, smooth trends) leaves the median at its spectral leakage,
  which the Hann taper keeps small: sidelobes start at -32 dB and fall by
  18 dB per octave (Harris 1978, Proc. IEEE 66(1), table 1). Every sinusoid
  gets at least 29 dB at L = 32 and 61 dB at L = 128, while white noise passes
  0 dB in 2 % of windows at L = 32, 0.25 % at 64, 0.005 % at 128 and none of
  20,000 at 256 (tests/test_oats_snr.py). A sine in white noise gets its true
  SNR within 1 dB (median over windows, L = 256).
- The limit: a window that repeats a white-noise pattern only 2-4 times fills
  half of the frequencies or more, and looks like noise to any spectral test.

The former estimate (the residual of a 5-point moving average) measured
roughness, not noise: it gave a noise-free sine of period 5 -20 to -32 dB (L = 128).
"""

import numpy as np

MIN_LENGTH = 32  # 13 periodogram ordinates in 2 <= k <= L/2 - 2 (at 16 a sine fills 3 of 5)


def snr_db(series: np.ndarray) -> np.ndarray:
    """Signal-to-noise ratio (n,) float64 in dB of each row of ``series`` (n, L), L >= 32.

    +inf when the noise floor is exactly 0 (a sinusoid at a Fourier frequency),
    -inf when the variance does not exceed the floor (white noise, a constant row).
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < MIN_LENGTH:
        raise ValueError(f"series has shape {x.shape}; give (n, L) with L >= {MIN_LENGTH}")
    length = x.shape[1]
    x = x - x.mean(axis=1, keepdims=True)
    taper = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)  # periodic Hann
    weight = taper**2 / (taper**2).sum()  # (L,)
    total = (x**2) @ weight  # (n,) the tapered variance: the mean of all I_k (Parseval)
    power = np.abs(np.fft.rfft(x * taper, axis=1)) ** 2 / (taper**2).sum()  # (n, L//2 + 1)
    noise = np.median(power[:, 2 : length // 2 - 1], axis=1) / np.log(2.0)  # (n,)
    signal = total - noise
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(signal / noise)
    return np.where(signal > 0, db, -np.inf)


def snr_gate(snr: np.ndarray, threshold_db: float = -np.inf, quantile: float = 0.0) -> np.ndarray:
    """Which samples (n,) bool the gate removes from a batch with SNRs ``snr`` (n,).

    A sample is gated when its SNR is below ``threshold_db`` (absolute, the
    paper's k; -inf: off) or when it is among the floor(``quantile`` * n)
    lowest SNRs of the batch (relative; ties: lower position first; 0: off).
    """
    snr = np.asarray(snr, dtype=np.float64)
    gated = snr < threshold_db
    noisiest = np.argsort(snr, kind="stable")[: int(np.floor(quantile * len(snr)))]
    gated[noisiest] = True
    return gated
