"""2F1(a, bb; a + 1; z) near z = 1: the incomplete-beta recurrence against closed forms, scipy and the series."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import digamma, gammaln, hyp2f1

from tiercast.models.btyd.hypergeometric import _log_beta, _log_hyp_by_recurrence, log_hyp2f1_series, log_hyp_a_b_a1


def _closed_form(a: int, bb: float, z: float) -> float:
    """log 2F1(a, bb; a + 1; z) = log(a z^-a ∫_0^z v^(a-1) (1-v)^-bb dv) for a = 1 and 2, integrating in u = 1 - v."""
    w = 1.0 - z

    def antiderivative(u: float) -> float:  # of u^-bb (a = 1) or (1 - u) u^-bb (a = 2)
        first = u ** (1 - bb) / (1 - bb)
        return first if a == 1 else first - u ** (2 - bb) / (2 - bb)

    return float(np.log(a * z**-a * (antiderivative(1.0) - antiderivative(w))))


@pytest.mark.parametrize(("a", "bb", "z"), itertools.product([1, 2], [0.4, 1.7, 7.3, 40.5], [0.95, 0.999, 1 - 1e-6]))
def test_recurrence_matches_the_closed_forms_at_a_1_and_2(a: int, bb: float, z: float) -> None:
    """bb = 0.4 needs no step (b = 1 - bb > 0: scipy's betainc alone), 40.5 needs 40 steps down: taken above
    z = 0.99 only, where scipy is slow; at 0.95 scipy's hyp2f1 is quicker than 40 passes and gives the value."""
    value, done = _log_hyp_by_recurrence(np.array([float(a)]), np.array([bb]), np.array([z]))
    assert done[0] == (z > 0.99 or bb < 11)
    expected = _closed_form(a, bb, z)
    if done[0]:
        assert value[0] == pytest.approx(expected, rel=1e-12, abs=1e-12)
    public = log_hyp_a_b_a1(np.array([float(a)]), np.array([bb]), np.array([z]), series=False)[0]
    assert public == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_recurrence_matches_scipy_where_scipy_is_sure() -> None:
    """At z <= 0.99 scipy's hyp2f1 is accurate to about 1e-14; wherever the recurrence takes an element it agrees,
    and it leaves to scipy the elements whose steps would multiply the error (a (1 - z) large beside |1 - bb|)."""
    a, bb, z = (g.ravel() for g in np.meshgrid([1.5, 20.0, 170.0, 2700.0], [0.3, 1.8, 7.3, 40.5], [0.92, 0.97, 0.99]))
    value, done = _log_hyp_by_recurrence(a, bb, z)
    reference = np.log(hyp2f1(a, bb, a + 1.0, z))
    assert 20 <= done.sum() < done.size
    np.testing.assert_allclose(value[done], reference[done], rtol=1e-11, atol=1e-12)
    assert done[bb < 1].all()  # no step (b = 1 - bb > 0): scipy's betainc alone
    assert not done[(a == 2700.0) & (bb == 40.5)].any()  # a (1 - z) of 27 to 216: the steps would multiply errors


def test_where_scipy_returns_inf_the_recurrence_gives_the_series_value() -> None:
    """Parameters a Pareto/NBD fit on a ridge evaluates (s = 173, one repeat purchase): scipy's hyp2f1 gives inf
    at the first z and is finite at the second; the positive-term series is the slow reference."""
    a, bb, z = (
        np.array([173.993, 173.993]),
        np.array([1.817, 1.817]),
        np.array([0.9978042556913619, 0.9975043277829319]),
    )
    scipy_value = np.log(hyp2f1(1.0, a + 1.0 - bb, a + 1.0, z)) + (1.0 - bb) * np.log1p(-z)
    assert not np.isfinite(scipy_value[0])
    series = log_hyp2f1_series(1.0, a + 1.0 - bb, a + 1.0, z) + (1.0 - bb) * np.log1p(-z)
    value = log_hyp_a_b_a1(a, bb, z, series=False)  # what the likelihood search evaluates
    np.testing.assert_allclose(value, series, rtol=1e-12)


@pytest.mark.parametrize(("a", "b"), [(200.0, 0.26), (3000.0, 0.2), (250_000.0, 0.26), (1e7, 0.999)])
def test_log_beta_of_a_large_a_keeps_its_digits(a: float, b: float) -> None:
    """ln B(a, b) = ln Γ(b) − ln(Γ(a + b)/Γ(a)); the ratio by the integral ln Γ(a + b) − ln Γ(a) = ∫_0^b ψ(a + t) dt,
    here by 20-point Gauss-Legendre over a digamma that is nearly straight: scipy's betaln lost 4e-10 at a = 250,000."""
    nodes, weights = np.polynomial.legendre.leggauss(20)
    t = (nodes + 1.0) * b / 2.0
    ratio = float(np.dot(weights, digamma(a + t)) * b / 2.0)
    assert _log_beta(np.array([a]), np.array([b]))[0] == pytest.approx(gammaln(b) - ratio, rel=1e-14, abs=1e-14)
