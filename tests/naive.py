"""Plain numpy / scipy twins of the Numba kernels, written for clarity, not speed."""

import numpy as np
from scipy import signal, stats

from s2gen.kernels import opcodes as oc
from s2gen.symbols.operators import BY_CODE


def arma_lfilter(phi: np.ndarray, theta: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Y_t = sum phi_i Y_{t-i} + e_t - sum theta_j e_{t-j} from a zero start."""
    return signal.lfilter(np.r_[1.0, -np.asarray(theta)], np.r_[1.0, -np.asarray(phi)], e)


def ar_roots_outside_unit_circle(phi: np.ndarray) -> bool:
    """Stationarity by the roots of 1 - phi_1 z - ... - phi_p z^p."""
    coeffs = np.r_[-np.asarray(phi)[::-1], 1.0]  # highest power first
    return bool(np.all(np.abs(np.roots(coeffs)) > 1.0))


def arma_autocovariance(phi, theta, max_lag: int, n_psi: int = 4000) -> np.ndarray:
    """Theoretical autocovariance gamma(0..max_lag) of a unit-variance-noise ARMA.

    From the MA(infinity) weights psi (the impulse response):
    gamma(k) = sum_j psi_j psi_{j+k}.
    """
    impulse = np.zeros(n_psi)
    impulse[0] = 1.0
    psi = arma_lfilter(phi, theta, impulse)
    return np.array([psi[: n_psi - k] @ psi[k:] for k in range(max_lag + 1)])


def mixture_cdf(weights, is_gauss, mu, sigma):
    """CDF of a mixture of N(mu, sigma^2) and uniform-between-0-and-mu components."""
    w = np.asarray(weights, float) / np.sum(weights)

    def cdf(x):
        x = np.asarray(x, float)
        total = np.zeros_like(x)
        for wj, g, m, s in zip(w, is_gauss, mu, sigma, strict=True):
            if g:
                total += wj * stats.norm.cdf(x, m, s)
            else:
                lo, hi = min(0.0, m), max(0.0, m)
                total += wj * stats.uniform.cdf(x, lo, hi - lo)
        return total

    return cdf


def constant_value(packed: int) -> float:
    """Float value of a packed constant, via Python's decimal parsing of m e E."""
    packed = int(packed)
    mantissa, exponent = abs(packed) // 16, abs(packed) % 16 - 8
    return float(f"{'-' if packed < 0 else ''}{mantissa}e{exponent}")


def evaluate_program(code, arg, length, x: np.ndarray) -> np.ndarray:
    """Evaluate a prefix program recursively with the registry's numpy twins."""
    pos = 0

    def node():
        nonlocal pos
        c, a = int(code[pos]), int(arg[pos])
        pos += 1
        if c == oc.VAR:
            return x[a].astype(np.float64)
        if c == oc.CONST:
            return np.full(x.shape[1], constant_value(a))
        op = BY_CODE[c]
        operands = [node() for _ in range(op.arity)]
        return op.numpy(*operands)

    out = node()
    assert pos == length, "program has trailing nodes"
    return out


def program_is_well_formed(code, arg, length, n_vars: int) -> bool:
    """Every operator has its operands and the program is exactly one tree."""
    need = 1
    for pos in range(length):
        if need <= 0:
            return False
        c = int(code[pos])
        if c == oc.VAR:
            if not 0 <= arg[pos] < n_vars:
                return False
            need -= 1
        elif c == oc.CONST:
            mantissa, exponent = abs(int(arg[pos])) // 16, abs(int(arg[pos])) % 16 - 8
            if not (1 <= mantissa <= 999 and -3 <= exponent <= -1):
                return False
            need -= 1
        else:
            need += BY_CODE[c].arity - 1
    return need == 0


def gp_bank_kernel(ktype: int, param: float, L: int) -> np.ndarray:
    """Gram matrix [L, L] of one KernelSynth bank kernel on t = linspace(0, 1, L)."""
    from s2gen.kernels import kernelsynth as ks

    t = np.linspace(0.0, 1.0, L)
    d = np.abs(t[:, None] - t[None, :])
    if ktype == ks.PERIODIC:  # sklearn ExpSineSquared, length scale 1, periodicity param / L
        return np.exp(-2.0 * np.sin(np.pi * d / (param / L)) ** 2)
    if ktype == ks.LINEAR:  # DotProduct(sigma_0 = param)
        return param**2 + np.outer(t, t)
    if ktype == ks.RBF:
        return np.exp(-(d**2) / (2.0 * param**2))
    if ktype == ks.RATIONAL_QUADRATIC:  # length scale 1, alpha = param
        return (1.0 + d**2 / (2.0 * param)) ** -param
    if ktype == ks.WHITE:
        return param * np.eye(L)
    return np.ones((L, L))


def gp_composite_kernel(ids, is_product, L: int) -> np.ndarray:
    """Gram matrix of bank kernels ids folded left with * (is_product[j]) or +."""
    from s2gen.kernels import kernelsynth as ks

    gram = gp_bank_kernel(ks.BANK_TYPES[ids[0]], ks.BANK_PARAMS[ids[0]], L)
    for j in range(1, len(ids)):
        term = gp_bank_kernel(ks.BANK_TYPES[ids[j]], ks.BANK_PARAMS[ids[j]], L)
        gram = gram * term if is_product[j] else gram + term
    return gram


def trend_season(t0, step, weights, coef_sin, coef_cos, a_lin, o_lin, a_exp, o_exp, noise, L):
    """ForecastPFN-like trend x seasonality with every harmonic by np.sin / np.cos."""
    from s2gen.kernels.seasonal import HARMONICS, PERIOD_DAYS

    t = np.arange(L)
    tau = (t0 + t) * step
    u = t / (L - 1)
    value = (1.0 + a_lin * (u - o_lin)) * np.exp(a_exp * (u - o_exp))
    for c, w in enumerate(weights):
        if w == 0.0:
            continue
        h = np.arange(1, HARMONICS[c] + 1)[:, None]
        angle = 2.0 * np.pi * h * tau[None, :] / PERIOD_DAYS[c]
        season = coef_sin[c, : h.size] @ np.sin(angle) + coef_cos[c, : h.size] @ np.cos(angle)
        value = value * (1.0 + w * season)
    return value * noise


def tone(L, amplitude, freq, chirp, phase, center, width, inverted):
    """A sin(2 pi (f u + chirp u^2 / 2) + phase) with an optional Gaussian envelope."""
    u = np.arange(L) / L
    value = amplitude * np.sin(2 * np.pi * (freq * u + 0.5 * chirp * u**2) + phase)
    if width > 0:
        envelope = np.exp(-0.5 * ((u - center) / width) ** 2)
        value *= 1 - envelope if inverted else envelope
    return value


def am(L, amplitude, carrier, depth, modulation, phase):
    u = np.arange(L) / L
    return (
        amplitude
        * (1 + depth * np.cos(2 * np.pi * modulation * u))
        * np.sin(2 * np.pi * carrier * u + phase)
    )


def sawtooth(L, amplitude, freq, phase):
    """A (2 frac(f u + phase / 2 pi) - 1), via scipy.signal.sawtooth."""
    u = np.arange(L) / L
    return amplitude * signal.sawtooth(2 * np.pi * freq * u + phase)


def dtw_band(x: np.ndarray, y: np.ndarray, window: int) -> float:
    """DTW_D cost of (C, L) cases x, y: the full cost matrix, cells with |i - j| > window barred.

    D[i, j] = |x_i - y_j|^2 + min(D[i-1, j-1], D[i-1, j], D[i, j-1]), D[0, 0] = 0.
    """
    length = x.shape[1]
    step = ((x[:, :, None] - y[:, None, :]) ** 2).sum(axis=0)  # (L, L)
    cost = np.full((length + 1, length + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, length + 1):
        for j in range(1, length + 1):
            if abs(i - j) <= window:
                before = min(cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1])
                cost[i, j] = step[i - 1, j - 1] + before
    return float(cost[length, length])


def seasonal_dense(poly, seasonal, s: int) -> np.ndarray:
    """Dense coefficients of poly(B) * seasonal(B^s) (lag 0 first), by np.convolve."""
    upsampled = np.zeros((len(seasonal) - 1) * s + 1)
    upsampled[::s] = seasonal
    return np.convolve(poly, upsampled)


def sarima_arma_part(ar, seasonal_ar, ma, seasonal_ma, s: int, e: np.ndarray) -> np.ndarray:
    """a(B) A(B^s) w = b(B) M(B^s) e from a zero start, by scipy.signal.lfilter."""
    a = seasonal_dense(ar, seasonal_ar, s)
    b = seasonal_dense(ma, seasonal_ma, s)
    return signal.lfilter(b, a, e)


def sarima_integrate(w: np.ndarray, d: int, D: int, s: int) -> np.ndarray:
    """(1 - B^s)^-D (1 - B)^-d w from zero initial values: lfilter and np.cumsum."""
    y = np.asarray(w, np.float64)
    for _ in range(D):
        y = signal.lfilter([1.0], np.r_[1.0, np.zeros(s - 1), -1.0], y)
    for _ in range(d):
        y = np.cumsum(y)
    return y


def lag_polynomial_roots(poly) -> np.ndarray:
    """Roots of 1 + c_1 z + ... + c_n z^n (numpy wants the highest power first)."""
    return np.roots(np.asarray(poly, np.float64)[::-1])


def natural_spline(knot_values, L: int) -> np.ndarray:
    """scipy's natural cubic spline through evenly spaced knots on [0, L - 1], at t = 0..L-1."""
    from scipy.interpolate import CubicSpline

    knots = np.linspace(0.0, L - 1.0, len(knot_values))
    return CubicSpline(knots, knot_values, bc_type="natural")(np.arange(L))


def time_warp(row, speed) -> np.ndarray:
    """row read at the trapezoid integral of ``speed``, rescaled to [0, L - 1], by np.interp."""
    tau = np.r_[0.0, np.cumsum(0.5 * (speed[1:] + speed[:-1]))]
    tau = tau * ((len(row) - 1) / tau[-1])
    tau[-1] = len(row) - 1
    return np.interp(tau, np.arange(len(row)), row)


def window_slice(row, start: int, width: int) -> np.ndarray:
    """row[start:start + width] resampled to len(row) points by np.interp."""
    L = len(row)
    positions = start + np.arange(L) * (width - 1) / (L - 1)
    positions[-1] = start + width - 1
    return np.interp(positions, np.arange(L), row)


def perturb_band(row, first_bin: int, factors, phases) -> np.ndarray:
    """Bins first_bin.. of np.fft.rfft(row) times factors * exp(i phases), then irfft."""
    spectrum = np.fft.rfft(row)
    band = slice(first_bin, first_bin + len(factors))
    spectrum[band] *= np.asarray(factors) * np.exp(1j * np.asarray(phases))
    return np.fft.irfft(spectrum, n=len(row))
