"""Drift: the population stability index (PSI) of features and scores between training and scoring.

PSI compares the share of a population falling in each bin of a reference (``expected``, training) with the share
in a current population (``actual``, scoring)::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

Every term is >= 0, so PSI is 0 for identical shares and grows with any movement. The usual reading: below 0.1
stable, 0.1-0.25 a moderate shift, above 0.25 a significant one (the default warning threshold).

:class:`DriftProfile` is the fitted reference: per column, quantile bin edges computed on the reference and the
reference share of each bin, plus the share of missing values as a bin of its own. It keeps no rows, so it is a few
hundred bytes per column and can live inside the scoring artifact.

Binning, per column (numeric; booleans count as 0/1):

* edges are the distinct reference quantiles at ``1/n_bins, ..., (n_bins-1)/n_bins`` (``inverted_cdf``, so every
  edge is an observed value), ignoring NaN and +-inf;
* bins are right-closed, ``(-inf, e_0], (e_0, e_1], ..., (e_last, +inf)``: the first and last bins are open-ended, so
  values outside the reference range land in them; right-closed bins keep a point mass at a low value (the zeros of
  a zero-inflated spend or count) in a bin of its own;
* a point mass spanning several quantiles collapses their edges into one, so a column has at most ``n_bins`` value
  bins, and a constant column has two: ``(-inf, c]`` and ``(c, +inf)``;
* NaN goes to the ``missing`` bin, the last one.

Age columns: a customer's tenure (days since the first transaction) and first-to-last-purchase span grow with the
history itself, so between a training reference and a later scoring cutoff they shift on any growing history (PSI
near 1 on the demo's 90 days), a warning that would always fire. Columns named in ``relative_columns`` are
compared as a share of the history's length instead: divided by the frame's largest ``length_column`` value (the
oldest customer's tenure, i.e. the time since the data start; a customer at a placeholder date more than a year
before everyone else is passed over, :func:`history_length`). A steady history then keeps its distribution, while
a real change in the customer base (a burst of new customers, acquisition stopping) still moves it. Their bins are
labelled in days all the same: by the compared frame's history length, and by the reference's after ``at training``
when it differs (``(81.6, 120.3] days; (75.2, 110.9] at training``: the same shares of a history 90 days shorter).

Empty bins: a share of 0 in either population would make ``ln(a / e)`` infinite, so shares are floored at
``epsilon`` (default 1e-4, i.e. 0.01 %) inside the PSI terms only. A bin empty in the reference that holds a share
``a`` now contributes about ``a * ln(a / 1e-4)`` (0.69 for a = 0.1): large but finite. Bins empty in both
populations contribute exactly 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

#: Floor of a bin's share inside the PSI terms (see the module docstring).
EPSILON = 1e-4
#: Usual PSI level of a significant shift.
WARN_THRESHOLD = 0.25
#: Label of the missing-value bin (always the last bin of a column).
MISSING_BIN = "missing"
#: Features that grow with the history's length, compared relative to it (see the module docstring).
AGE_COLUMNS = ("tenure_days", "first_to_last_days")
#: The feature whose largest value is the history's length at a cutoff.
HISTORY_LENGTH_COLUMN = "tenure_days"
#: Columns of :meth:`DriftProfile.psi`.
PSI_COLUMNS = ("column", "psi", "status", "bin", "expected_share", "actual_share")


def _shares(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype="float64")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} shares must be a non-empty one-dimensional array")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} shares must be finite and non-negative")
    if not np.isclose(arr.sum(), 1.0, rtol=0.0, atol=1e-6):
        raise ValueError(f"{name} shares must sum to 1, got {arr.sum():.6g}")
    return arr


def psi_terms(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, *, epsilon: float = EPSILON
) -> np.ndarray:
    """Per-bin PSI contributions ``(a - e) * ln(a / e)``, shares floored at ``epsilon``; each term is >= 0."""
    e = _shares(expected, "expected")
    a = _shares(actual, "actual")
    if e.shape != a.shape:
        raise ValueError(f"expected and actual shares differ in length: {e.size} vs {a.size}")
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    e, a = np.maximum(e, epsilon), np.maximum(a, epsilon)
    return (a - e) * np.log(a / e)


def psi(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, *, epsilon: float = EPSILON
) -> float:
    """Population stability index of two share vectors over the same bins (each summing to 1)."""
    return float(psi_terms(expected, actual, epsilon=epsilon).sum())


def _values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64 with NaN for missing; raises TypeError for a non-numeric column."""
    s = frame[column]
    if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        raise TypeError(f"drift column {column!r} is not numeric (dtype {s.dtype})")
    return s.to_numpy(dtype="float64", na_value=np.nan)


def _edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Distinct reference quantiles at the interior probabilities (finite values only)."""
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return np.empty(0, dtype="float64")
    probs = np.arange(1, n_bins) / n_bins
    return np.unique(np.quantile(finite, probs, method="inverted_cdf")).astype("float64")


def bin_shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``x`` in each right-closed bin of ``edges`` (open-ended at both ends), then the missing share."""
    missing = np.isnan(x)
    codes = np.searchsorted(edges, x[~missing], side="left")
    counts = np.bincount(codes, minlength=edges.size + 1).astype("float64")
    return np.append(counts, float(missing.sum())) / max(x.size, 1)


def bin_labels(edges: np.ndarray, *, fmt: str = ".6g") -> list[str]:
    """Readable labels of the bins of ``edges``: ``(-inf, e0]``, ``(e0, e1]``, ..., ``(e_last, inf)``, missing."""
    bounds = ["-inf", *(f"{v:{fmt}}" for v in edges), "inf"]
    labels = [f"({lo}, {hi}]" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    labels[-1] = labels[-1][:-1] + ")"
    return [*labels, MISSING_BIN]


def day_labels(edges: np.ndarray, length: float, reference_length: float | None = None) -> list[str]:
    """Labels of relative bins (``edges`` as shares of a history) in days of a history ``length`` days long, e.g.
    ``(81.6, 120.3] days``; with a different ``reference_length``, the reference's days after them:
    ``(81.6, 120.3] days; (75.2, 110.9] at training``."""
    now = bin_labels(edges * length, fmt=".1f")
    if reference_length is None or f"{reference_length:.1f}" == f"{length:.1f}":
        return [f"{label} days" for label in now[:-1]] + [MISSING_BIN]
    then = bin_labels(edges * reference_length, fmt=".1f")
    return [f"{a} days; {b} at training" for a, b in zip(now[:-1], then[:-1], strict=True)] + [MISSING_BIN]


#: A customer first seen more than this many days before every other one is a placeholder date (1970-01-01), as the
#: ingestion's history start takes it, not the start of the history.
PLACEHOLDER_GAP_DAYS = 365
#: At most this share of the customers is passed over as placeholders.
PLACEHOLDER_SHARE = 0.01


def history_length(tenure: np.ndarray) -> float | None:
    """The history's length from customers' tenures (days since their first purchase): the largest, except that the
    largest ones lying more than :data:`PLACEHOLDER_GAP_DAYS` beyond every smaller one, at most
    :data:`PLACEHOLDER_SHARE` of the customers, are passed over. Rows at a placeholder date stay accepted (the history
    the cutoffs are planned in starts after the gap), so one such customer would otherwise be the yardstick, and
    the shares of everyone else would grow with every day of the real history, the drift the yardstick removes."""
    if tenure.size == 0:
        return None
    top = np.sort(tenure)[::-1]
    i, most = 0, int(PLACEHOLDER_SHARE * top.size)
    while i < min(most, top.size - 1) and top[i] - top[i + 1] > PLACEHOLDER_GAP_DAYS:
        i += 1
    return float(top[i])


#: The status of a PSI above the threshold on populations too small to tell drift from sampling noise.
FEW_ROWS = "few rows"


def sampling_psi(n_bins: int, n_reference: int, n_current: int) -> float:
    """The PSI two samples of one distribution show on average: about ``(bins - 1) * (1 / n_reference + 1 /
    n_current)`` (PSI is close to a chi-square statistic over the bins). On 20 customers a side and 10 bins it is
    0.9, far above the 0.2 warning: small populations drift by sampling alone."""
    return max(n_bins - 1, 0) * (1.0 / max(n_reference, 1) + 1.0 / max(n_current, 1))


class DriftProfile(BaseEstimator):
    """Reference distribution of some numeric columns, for PSI against a later population.

    ``fit`` stores, per column, the quantile bin edges of the reference (``edges_``) and the reference share of each
    bin, missing last (``shares_``); no rows are kept. ``psi`` bins a current frame with the same edges and returns
    one row per column. A PSI above ``warn_threshold`` gets status ``warn``. ``relative_columns`` are binned as a
    share of the frame's largest ``length_column`` value (their edges are such shares; ``history_days_`` is the
    reference's length), their bins labelled in days (:func:`day_labels`).
    """

    def __init__(
        self,
        n_bins: int = 10,
        warn_threshold: float = WARN_THRESHOLD,
        epsilon: float = EPSILON,
        relative_columns: tuple[str, ...] = (),
        length_column: str = HISTORY_LENGTH_COLUMN,
    ) -> None:
        self.n_bins = n_bins
        self.warn_threshold = warn_threshold
        self.epsilon = epsilon
        self.relative_columns = relative_columns
        self.length_column = length_column

    def _history_days(self, frame: pd.DataFrame) -> float | None:
        """The history's length in ``frame``: its largest ``length_column`` value, passing over the few largest
        that lie more than a year beyond every other (:func:`history_length`); None when there is none."""
        length = _values(frame, self.length_column)
        scale = history_length(length[np.isfinite(length)])
        return scale if scale is not None and scale > 0 else None

    def _relative(self, column: str) -> bool:
        return column in getattr(self, "relative_columns", ())  # profiles pickled before relative columns

    def _column(self, frame: pd.DataFrame, column: str) -> np.ndarray:
        """A column's values, as a share of the history's length for a relative column."""
        x = _values(frame, column)
        if not self._relative(column):
            return x
        scale = self._history_days(frame)
        return x / scale if scale is not None else x

    def _labels(self, column: str, length: float | None) -> list[str]:
        """Bin labels of a fitted column: in days of a history ``length`` days long for a relative column (and of
        the reference's, when known and different), else in the column's own values."""
        edges = self.edges_[column]
        if not self._relative(column) or length is None:
            return bin_labels(edges)
        return day_labels(edges, length, getattr(self, "history_days_", None))

    def fit(self, frame: pd.DataFrame, columns: Iterable[str] | None = None) -> DriftProfile:
        """Learn edges and shares of ``columns`` (default: every numeric column) on the reference ``frame``."""
        if int(self.n_bins) < 2:
            raise ValueError(f"n_bins must be at least 2, got {self.n_bins}")
        if len(frame) == 0:
            raise ValueError("cannot fit a drift profile on an empty frame")
        if columns is None:
            columns = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        cols = tuple(str(c) for c in columns)
        _require(frame, cols)
        if set(self.relative_columns) & set(cols):
            _require(frame, (self.length_column,))
        edges: dict[str, np.ndarray] = {}
        shares: dict[str, np.ndarray] = {}
        for col in cols:
            x = self._column(frame, col)
            edges[col] = _edges(x, int(self.n_bins))
            shares[col] = bin_shares(x, edges[col])
        self.columns_ = cols
        self.edges_ = edges
        self.shares_ = shares
        self.n_reference_ = len(frame)
        self.history_days_ = self._history_days(frame) if set(self.relative_columns) & set(cols) else None
        return self

    def current_shares(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Share of ``frame`` in each reference bin (missing last), per fitted column."""
        check_is_fitted(self, "shares_")
        if len(frame) == 0:
            raise ValueError("cannot compare an empty frame with the drift profile")
        _require(frame, self.columns_)
        if set(getattr(self, "relative_columns", ())) & set(self.columns_):
            _require(frame, (self.length_column,))
        return {col: bin_shares(self._column(frame, col), self.edges_[col]) for col in self.columns_}

    def psi(self, frame: pd.DataFrame, *, threshold: float | None = None) -> pd.DataFrame:
        """PSI of each fitted column between the reference and ``frame``, in fitted column order.

        Columns: ``column``, ``psi``, ``status`` (``warn`` when psi > threshold, default ``warn_threshold``, else
        ``ok``; :data:`FEW_ROWS` instead of ``warn`` when sampling alone makes a PSI of half the threshold expected,
        :func:`sampling_psi`), and the bin contributing most to the PSI (``bin`` label, ``expected_share``,
        ``actual_share``; ties go to the first such bin).
        """
        limit = self.warn_threshold if threshold is None else threshold
        n_reference = getattr(self, "n_reference_", None)  # profiles pickled before it: no sampling check
        current = self.current_shares(frame)
        relative = set(getattr(self, "relative_columns", ())) & set(self.columns_)
        length = self._history_days(frame) if relative else None
        rows = []
        for col, actual in current.items():
            expected = self.shares_[col]
            terms = psi_terms(expected, actual, epsilon=self.epsilon)
            top = int(np.argmax(terms))
            value = float(terms.sum())
            noise = sampling_psi(int((expected > 0).sum()), n_reference, len(frame)) if n_reference else 0.0
            rows.append(
                (
                    col,
                    value,
                    "ok" if value <= limit else FEW_ROWS if noise > limit / 2 else "warn",
                    self._labels(col, length)[top],
                    float(expected[top]),
                    float(actual[top]),
                )
            )
        out = pd.DataFrame(rows, columns=list(PSI_COLUMNS))
        return out.astype({"column": "str", "psi": "float64", "status": "str", "bin": "str"})

    def describe(self, column: str) -> pd.DataFrame:
        """The reference bins of one column: label (in the reference's days for a relative column) and share."""
        check_is_fitted(self, "shares_")
        length = getattr(self, "history_days_", None) if self._relative(column) else None
        return pd.DataFrame({"bin": self._labels(column, length), "share": self.shares_[column]})


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks drift column(s): {', '.join(missing[:10])}")
