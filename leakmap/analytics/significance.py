"""The statistics the diagnosis rests on: is a difference between two proportions real?

No finding may rest on a difference that a two-proportion test would not call significant at
5 % (CONTRACT §5). Fisher's exact test is used when any expected cell count is small (< 5),
where the normal approximation of the z-test is unreliable; the pooled two-proportion z-test
otherwise. A diagnosis runs many comparisons at once (every rep, source and stage), so
`holm` controls the family-wise error rate across them: with no real differences the chance of
even one finding stays at or under alpha.

Pure functions on counts (the counts themselves come from SQL in the report modules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2×2 table [[a, b], [c, d]].

    Sums the hypergeometric probabilities of every table with the same margins that is no more
    likely than the observed one (the usual "minimum likelihood" two-sided definition, as in R
    and SciPy).
    """
    if min(a, b, c, d) < 0:
        raise ValueError("counts cannot be negative")
    row1, row2, col1 = a + b, c + d, a + c
    n = row1 + row2
    if n == 0:
        return 1.0
    lo, hi = max(0, col1 - row2), min(col1, row1)
    denominator = _log_comb(n, col1)

    def log_p(x: int) -> float:
        return _log_comb(row1, x) + _log_comb(row2, col1 - x) - denominator

    observed = log_p(a)
    # A relative tolerance so that tables exactly as likely as the observed one count.
    threshold = observed + 1e-7
    p = sum(math.exp(lp) for lp in (log_p(x) for x in range(lo, hi + 1)) if lp <= threshold)
    return min(1.0, p)


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of x1/n1 against x2/n2."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """p-value for "x1/n1 differs from x2/n2": Fisher's exact test when any expected cell is
    under 5, the z-test otherwise."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    total, successes = n1 + n2, x1 + x2
    expected = [
        n1 * successes / total,
        n1 * (total - successes) / total,
        n2 * successes / total,
        n2 * (total - successes) / total,
    ]
    if min(expected) < 5:
        return fisher_exact(x1, n1 - x1, x2, n2 - x2)
    return two_proportion_z(x1, n1, x2, n2)


@dataclass(frozen=True)
class Comparison:
    """One candidate difference: `x/n` of the subject against `bx/bn` of its benchmark."""

    x: int
    n: int
    bx: int
    bn: int

    @property
    def rate(self) -> float | None:
        return self.x / self.n if self.n else None

    @property
    def benchmark_rate(self) -> float | None:
        return self.bx / self.bn if self.bn else None

    @property
    def p_value(self) -> float:
        return proportion_p_value(self.x, self.n, self.bx, self.bn)


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Holm–Bonferroni: which of the hypotheses to reject, keeping the family-wise error at alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    m = len(p_values)
    rejected = [False] * m
    for rank, i in enumerate(order):
        if p_values[i] <= alpha / (m - rank):
            rejected[i] = True
        else:
            break
    return rejected
