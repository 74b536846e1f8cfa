"""Buy-till-you-die models: BG/NBD, Pareto/NBD and Gamma-Gamma, fitted by maximum likelihood.

Inputs follow the lifetimes convention, in any one time unit:

- ``frequency`` (x): number of repeat purchase periods (purchase days − 1),
- ``recency`` (t_x): time from the first to the last purchase,
- ``T``: age, time from the first purchase to the end of the observation window.

Everything is computed in logs (``gammaln``, ``betaln``, ``logaddexp``) and fitted by BFGS on log-parameters,
with times rescaled to O(10) inside the optimizer for conditioning.

``prob_no_purchase(t, ...)`` is the probability of *zero purchases in (T, T + t]* given the history. For any of
these models, "history (x, t_x, T) followed by no purchase in (T, T + t]" is the same event as "history
(x, t_x, T + t)", so it is exactly ``L(x, t_x, T + t) / L(x, t_x, T)``; we compute it that way. This is *not*
``1 − P(alive)``: BG/NBD's P(alive) is 1 for every customer without a repeat purchase, which ranks the
likeliest churners as safest.

References: Fader, Hardie & Lee (2005) "Counting your customers the easy way" (BG/NBD); Fader & Hardie note
009 "A note on deriving the Pareto/NBD model and related expressions" (2005); Fader & Hardie note 025
"The Gamma-Gamma model of monetary value" (2013).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import OptimizeResult, minimize
from scipy.special import betaln, expit, gammaln, hyp2f1
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tiercast.models.btyd.hypergeometric import log_hyp2f1_series, log_hyp_a_b_a1

__all__ = ["BetaGeoModel", "GammaGammaModel", "ParetoNBDModel"]

Array = NDArray[np.float64]


# ----------------------------------------------------------------------------------------------- helpers


def _as_float(v: ArrayLike) -> Array:
    return np.asarray(v, dtype=float)


def _check_rft(frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, t: ArrayLike | None = None) -> tuple[Array, ...]:
    """Validate and broadcast (x, t_x, T[, t]): finite, x >= 0, 0 <= t_x <= T, t_x = 0 when x = 0, t >= 0."""
    if t is not None:
        tt, x, tx, age = np.broadcast_arrays(_as_float(t), _as_float(frequency), _as_float(recency), _as_float(T))
        if not np.isfinite(tt).all() or (tt < 0).any():
            raise ValueError("t must be finite and >= 0")
        return (*_check_rft(x, tx, age), tt.astype(float))
    x, tx, age = np.broadcast_arrays(_as_float(frequency), _as_float(recency), _as_float(T))
    if not (np.isfinite(x).all() and np.isfinite(tx).all() and np.isfinite(age).all()):
        raise ValueError("frequency, recency and T must be finite")
    if (x < 0).any() or (tx < 0).any():
        raise ValueError("frequency and recency must be >= 0")
    if (tx > age * (1 + 1e-12) + 1e-12).any():
        raise ValueError("recency must be <= T")
    if ((x == 0) & (tx > 0)).any():
        raise ValueError("recency must be 0 when frequency is 0")
    return x.astype(float), tx.astype(float), age.astype(float)


def _compress(*cols: Array) -> tuple[list[Array], Array]:
    """Unique rows of the columns and their counts: the likelihood only needs each pattern once."""
    stacked = np.column_stack(cols)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return [uniq[:, i] for i in range(uniq.shape[1])], counts.astype(float)


_LOG_BOX = 15.0  # log-parameters are kept in [-15, 15] (in rescaled units): degenerate data cannot run off
# The Nelder-Mead polish stops once the mean log-likelihood has gained less than 1e-9 per iteration over its last
# 50 iterations. Where the maximum is at infinity along a ridge (Pareto/NBD on a few dozen customers without a
# visible dropout: s and beta grow together) it would otherwise crawl along the ridge for its whole budget, half a
# minute of hyp2f1 calls, for a gain of 1e-7 per customer.
_FLAT_GAIN, _FLAT_WINDOW = 1e-9, 50


class _FlatStop:
    """An optimizer callback ending the run once the objective has gained less than ``_FLAT_GAIN`` per iteration
    over the last ``_FLAT_WINDOW`` iterations."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def __call__(self, intermediate_result: OptimizeResult) -> None:
        self.values.append(float(intermediate_result.fun))
        if (
            len(self.values) > _FLAT_WINDOW
            and self.values[-_FLAT_WINDOW - 1] - self.values[-1] < _FLAT_GAIN * _FLAT_WINDOW
        ):
            raise StopIteration


def _fit_log_params(
    neg_mean_ll: Callable[[Array], float], x0: Array, max_iter: int, tol: float
) -> tuple[Array, float, bool]:
    """Minimize a mean negative log-likelihood over log-parameters with BFGS (numerical gradient).

    The objective is evaluated at the log-parameters clipped to a box, so an MLE at infinity (e.g. a handful of
    customers) ends at the box edge instead of diverging; such a fit is reported as not converged. A Nelder-Mead
    polish runs only if BFGS stalls far from a stationary point, until the objective goes flat (:class:`_FlatStop`).
    Returns (log-parameters, objective, converged).
    """

    def f(z: Array) -> float:
        return neg_mean_ll(np.clip(z, -_LOG_BOX, _LOG_BOX))

    res = minimize(f, x0, method="BFGS", options={"maxiter": max_iter, "gtol": tol})
    ok = bool(res.success) or float(np.max(np.abs(res.jac))) < 1e-5
    if not ok:
        options = {"maxiter": 400 * x0.size, "xatol": 1e-7, "fatol": 1e-12}
        nm = minimize(f, res.x, method="Nelder-Mead", options=options, callback=_FlatStop())
        if nm.fun <= res.fun:
            res, ok = nm, bool(nm.success)
    z = np.clip(np.asarray(res.x, dtype=float), -_LOG_BOX, _LOG_BOX)
    return z, float(res.fun), ok and bool(np.all(np.abs(z) < _LOG_BOX - 3.0))  # near the edge: MLE at infinity


class _CountModel(BaseEstimator):
    """Shared fit / predict plumbing of the two transaction-count models."""

    _param_names: tuple[str, ...] = ()
    _time_params: tuple[str, ...] = ()  # parameters measured in time units (rescaled with the data)

    def __init__(self, *, max_iter: int = 1000, tol: float = 1e-7) -> None:
        self.max_iter = max_iter
        self.tol = tol

    @staticmethod
    def _loglik(params: Array, x: Array, tx: Array, T: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def _search_loglik(self, params: Array, x: Array, tx: Array, T: Array) -> Array:
        """The log-likelihood the maximum-likelihood search evaluates (:meth:`_loglik` unless a model needs a
        cheaper form there)."""
        return self._loglik(params, x, tx, T)

    def fit(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> _CountModel:
        """Maximum-likelihood fit; sets ``params_``, ``log_likelihood_`` (total), ``n_customers_`` and
        ``converged_`` (False also when a parameter ran to the edge of its range: too little data)."""
        x, tx, age = _check_rft(frequency, recency, T)
        if x.size == 0 or age.max() <= 0:
            raise ValueError("need at least one customer with T > 0")
        scale = age.max() / 10.0  # work in units where T is O(10): alpha/beta start near 1
        (xu, txu, Tu), w = _compress(x, tx / scale, age / scale)
        n = w.sum()

        def nll(logp: Array) -> float:
            with np.errstate(all="ignore"):
                val = -float(np.dot(w, self._search_loglik(np.exp(logp), xu, txu, Tu))) / n
            return val if np.isfinite(val) else 1e300

        logp, _, ok = _fit_log_params(nll, np.zeros(len(self._param_names)), self.max_iter, self.tol)
        params = dict(zip(self._param_names, np.exp(logp).tolist(), strict=True))
        for name in self._time_params:
            params[name] = float(params[name] * scale)
        self.params_ = params
        self.log_likelihood_ = float(np.sum(self._loglik(self._params_array(), x, tx, age)))
        self.converged_ = ok
        self.n_customers_ = int(x.size)
        return self

    def _params_array(self) -> Array:
        check_is_fitted(self, "params_")
        return np.array([self.params_[k] for k in self._param_names], dtype=float)

    def log_likelihood(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:
        """Per-customer log-likelihood of the history (x, t_x, T) under the fitted parameters."""
        x, tx, age = _check_rft(frequency, recency, T)
        return self._loglik(self._params_array(), x, tx, age)

    def prob_no_purchase(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:
        """P(no purchase in (T, T + t] | x, t_x, T) = L(x, t_x, T + t) / L(x, t_x, T). Not 1 − P(alive)."""
        x, tx, age, t = _check_rft(frequency, recency, T, t)
        p = self._params_array()
        return np.exp(np.minimum(self._loglik(p, x, tx, age + t) - self._loglik(p, x, tx, age), 0.0))


# ----------------------------------------------------------------------------------------------- BG/NBD


class BetaGeoModel(_CountModel):
    """BG/NBD (Fader, Hardie & Lee 2005): Poisson purchases at rate λ ~ Gamma(r, α) while alive; after each
    purchase the customer drops out with probability p ~ Beta(a, b)."""

    _param_names = ("r", "alpha", "a", "b")
    _time_params = ("alpha",)

    @staticmethod
    def _loglik(params: Array, x: Array, tx: Array, T: Array) -> Array:
        r, alpha, a, b = params
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
        # dropped out right after the last purchase (only possible when x > 0)
        xm = np.maximum(x, 1.0)
        dead = betaln(a + 1, b + xm - 1) - betaln(a, b) - (r + x) * np.log(alpha + tx)
        return common + np.logaddexp(alive, np.where(x > 0, dead, -np.inf))

    def _log_odds_dead(self, x: Array, tx: Array, T: Array) -> Array:
        r, alpha, a, b = self._params_array()
        xm = np.maximum(x, 1.0)
        lo = np.log(a) - np.log(b + xm - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
        return np.where(x > 0, lo, -np.inf)

    def prob_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:
        """P(alive at T | x, t_x, T); 1 for customers without a repeat purchase (a model property)."""
        x, tx, age = _check_rft(frequency, recency, T)
        return expit(-self._log_odds_dead(x, tx, age))

    def expected_purchases(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:
        """E[purchases in (T, T + t] | x, t_x, T], FHL (2005) eq. (10).

        The term ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x−1; z), z = t/(α+T+t), is computed through Euler's
        transformation as (1−z)^(a−1) · 2F1(a+b−1−r, a−1; a+b+x−1; z), which cannot overflow for large x.
        """
        x, tx, age, t = _check_rft(frequency, recency, T, t)
        r, alpha, a, b = self._params_array()
        am1 = a - 1.0 if abs(a - 1.0) > 1e-7 else 1e-7  # removable singularity at a = 1
        c = a + b + x - 1
        log1mz = np.log(alpha + age) - np.log(alpha + age + t)  # log(1 − z)
        z = -np.expm1(log1mz)
        with np.errstate(all="ignore"):
            hyp = np.exp(am1 * log1mz) * hyp2f1(a + b - 1 - r, am1, c, z)
            body = c / am1 * (1.0 - hyp)
        bad = ~np.isfinite(body) & (c > 0) & (t > 0)
        if bad.any():  # extreme parameters: the untransformed series has positive terms and cannot fail
            log_hyp = log_hyp2f1_series(r + x[bad], b + x[bad], c[bad], z[bad])
            body = np.array(body, dtype=float)
            body[bad] = c[bad] / am1 * -np.expm1((r + x[bad]) * log1mz[bad] + log_hyp)
        return np.where(t > 0, body * expit(-self._log_odds_dead(x, tx, age)), 0.0)


# ----------------------------------------------------------------------------------------------- Pareto/NBD


class ParetoNBDModel(_CountModel):
    """Pareto/NBD (Schmittlein, Morrison & Colombo 1987): Poisson purchases at rate λ ~ Gamma(r, α) and an
    exponential lifetime with rate μ ~ Gamma(s, β)."""

    _param_names = ("r", "alpha", "s", "beta")
    _time_params = ("alpha", "beta")

    @staticmethod
    def _log_a0(params: Array, x: Array, tx: Array, T: Array, *, series: bool = True) -> Array:
        """log A0 of Fader & Hardie note 009 eqs. (19)-(20), choosing the branch with z = |α − β|/(max + τ)."""
        r, alpha, s, beta = params
        hi, lo = max(alpha, beta), min(alpha, beta)
        d = hi - lo
        # log[ 2F1(a, bb; a+1; d/(hi+τ)) / (hi+τ)^a ] depends on the row only through (x, τ), and rows share
        # those pairs: every customer without a repeat purchase has (0, 0) at t_x, a cohort shares T. Near z = 1
        # one hyp2f1 element costs up to milliseconds, so each distinct pair is computed once.
        x, tx, T = np.broadcast_arrays(x, tx, T)
        pairs = np.concatenate([(x + 1j * tx).ravel(), (x + 1j * T).ravel()])
        uniq, inverse = np.unique(pairs, return_inverse=True)
        xu, tau = uniq.real, uniq.imag
        a = r + s + xu
        bb = np.full_like(xu, s + 1.0) if alpha >= beta else r + xu
        log_f = (log_hyp_a_b_a1(a, bb, d / (hi + tau), series=series) - a * np.log(hi + tau))[inverse.reshape(-1)]
        f_tx, f_T = log_f[: x.size].reshape(x.shape), log_f[x.size :].reshape(x.shape)
        diff = np.minimum(f_T - f_tx, 0.0)  # f is decreasing in tau
        with np.errstate(divide="ignore"):
            return f_tx + np.log(-np.expm1(diff))

    @staticmethod
    def _loglik(params: Array, x: Array, tx: Array, T: Array, *, series: bool = True) -> Array:
        r, alpha, s, beta = params
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        dead = np.log(s) - np.log(r + s + x) + ParetoNBDModel._log_a0(params, x, tx, T, series=series)
        return head + np.logaddexp(alive, dead)

    def _search_loglik(self, params: Array, x: Array, tx: Array, T: Array) -> Array:
        """Without the series fallback of :func:`~tiercast.models.btyd.hypergeometric.log_hyp_a_b_a1` (as the fit
        always searched)."""
        return self._loglik(params, x, tx, T, series=False)

    def prob_alive(self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:
        """P(alive at T | x, t_x, T), note 009 eq. (36)."""
        x, tx, age = _check_rft(frequency, recency, T)
        p = self._params_array()
        r, alpha, s, beta = p
        log_odds_dead = (
            np.log(s) - np.log(r + s + x) + self._log_a0(p, x, tx, age)
            + (r + x) * np.log(alpha + age) + s * np.log(beta + age)
        )  # fmt: skip
        return expit(-log_odds_dead)

    def expected_purchases(self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike) -> Array:
        """E[purchases in (T, T + t] | x, t_x, T], note 009 eq. (41):
        P(alive) · (r+x)(β+T) / ((α+T)(s−1)) · [1 − ((β+T)/(β+T+t))^(s−1)]  (limit log((β+T+t)/(β+T)) at s = 1).
        """
        x, tx, age, t = _check_rft(frequency, recency, T, t)
        r, alpha, s, beta = self._params_array()
        log_ratio = np.log(beta + age + t) - np.log(beta + age)  # >= 0
        sm1 = s - 1.0
        horizon_term = log_ratio if abs(sm1) < 1e-10 else -np.expm1(-sm1 * log_ratio) / sm1
        rate = (r + x) * (beta + age) / (alpha + age)
        return self.prob_alive(x, tx, age) * rate * horizon_term


# ----------------------------------------------------------------------------------------------- Gamma-Gamma


class GammaGammaModel(BaseEstimator):
    """Gamma-Gamma spend model (Fader, Hardie & Lee 2005; Fader & Hardie note 025).

    A customer's spend per transaction ~ Gamma(p, ν) with ν ~ Gamma(q, v); fitted on the mean spend of the
    *repeat* transactions of customers with x > 0, unpenalized (a penalty visibly biases the CDNOW fit).
    """

    def __init__(self, *, max_iter: int = 1000, tol: float = 1e-7) -> None:
        self.max_iter = max_iter
        self.tol = tol

    @staticmethod
    def _loglik(params: Array, x: Array, m: Array) -> Array:
        p, q, v = params
        px = p * x
        return (
            gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
            + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v)
        )  # fmt: skip

    def fit(self, frequency: ArrayLike, monetary_value: ArrayLike) -> GammaGammaModel:
        """Fit on customers with frequency > 0 and monetary_value > 0 (others carry no spend information);
        sets ``params_`` (p, q, v), ``n_customers_`` (rows used) and ``converged_``."""
        x, m = np.broadcast_arrays(_as_float(frequency), _as_float(monetary_value))
        if not (np.isfinite(x).all() and np.isfinite(m).all()):
            raise ValueError("frequency and monetary_value must be finite")
        keep = (x > 0) & (m > 0)
        if keep.sum() < 3:
            raise ValueError("Gamma-Gamma needs at least 3 repeat customers with positive spend")
        scale = float(np.median(m[keep]))  # fit in units of the median spend, then rescale v
        (xu, mu), w = _compress(x[keep], m[keep] / scale)
        n = w.sum()

        def nll(logp: Array) -> float:
            with np.errstate(all="ignore"):
                val = -float(np.dot(w, self._loglik(np.exp(logp), xu, mu))) / n
            return val if np.isfinite(val) else 1e300

        logp, _, ok = _fit_log_params(nll, np.array([0.0, np.log(2.0), 0.0]), self.max_iter, self.tol)
        p, q, v = np.exp(logp)
        self.params_ = {"p": float(p), "q": float(q), "v": float(v * scale)}
        self.log_likelihood_ = float(np.sum(self._loglik(np.array([p, q, v * scale]), x[keep], m[keep])))
        self.n_customers_ = int(keep.sum())
        self.converged_ = ok
        return self

    def conditional_expected_average_profit(self, frequency: ArrayLike, monetary_value: ArrayLike) -> Array:
        """E[mean spend per transaction | x, m] = p(v + x·m) / (p·x + q − 1): a credibility-weighted mix of the
        customer's mean m and the population mean p·v/(q − 1). x = 0 gives the population mean; needs q > 1."""
        check_is_fitted(self, "params_")
        p, q, v = self.params_["p"], self.params_["q"], self.params_["v"]
        if q <= 1:
            raise ValueError(f"q = {q:.3f} <= 1: the population mean spend is infinite")
        x, m = np.broadcast_arrays(_as_float(frequency), _as_float(monetary_value))
        m = np.where(x > 0, m, 0.0)
        return p * (v + x * m) / (p * x + q - 1)
