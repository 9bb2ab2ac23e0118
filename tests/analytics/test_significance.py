from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leakmap.analytics.significance import (
    Comparison,
    fisher_exact,
    holm,
    proportion_p_value,
    two_proportion_z,
)


def test_it_matches_the_textbook_fisher_values():
    # The lady tasting tea: 3 of 4 right → one-sided 0.243, two-sided 0.486.
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(0.4857, abs=1e-4)
    # R: fisher.test(matrix(c(1, 9, 11, 3), 2)) → p = 0.002759
    assert fisher_exact(1, 9, 11, 3) == pytest.approx(0.002759, abs=1e-5)
    assert fisher_exact(0, 0, 0, 0) == 1.0


def test_it_matches_the_textbook_z_test():
    # 20/80 (小李) against 5/50 (小王): pooled 25/130, z = 2.111, p = 0.0348
    assert two_proportion_z(20, 80, 5, 50) == pytest.approx(0.0348, abs=2e-4)
    assert two_proportion_z(10, 100, 10, 100) == pytest.approx(1.0)


def test_it_uses_fisher_for_small_counts():
    assert proportion_p_value(3, 4, 1, 4) == fisher_exact(3, 1, 1, 3)
    assert proportion_p_value(200, 400, 100, 400) == two_proportion_z(200, 400, 100, 400)


def test_seed_table_sources_differ_significantly():
    # 百度广告 10/500 wins against 老客户转介绍 12/40: a real leak.
    assert Comparison(10, 500, 12, 40).p_value < 1e-6


def test_holm_controls_the_family():
    assert holm([0.01, 0.04, 0.03, 0.5]) == [True, False, False, False]
    assert holm([0.001, 0.002, 0.003]) == [True, True, True]
    assert holm([]) == []


def test_the_false_positive_rate_of_a_single_test_stays_under_alpha():
    """Equal true rates: the test rejects at most about 5 % of the time (it is conservative
    with Fisher on small samples)."""
    rng = random.Random(7)
    rejections = 0
    trials = 2000
    for _ in range(trials):
        n1, n2 = rng.randint(10, 200), rng.randint(10, 200)
        x1 = sum(rng.random() < 0.2 for _ in range(n1))
        x2 = sum(rng.random() < 0.2 for _ in range(n2))
        rejections += proportion_p_value(x1, n1, x2, n2) <= 0.05
    assert rejections / trials <= 0.06


def _binom_by_every_term(x: int, n: int, p: float) -> float:
    """The two-sided exact binomial test summed over all n + 1 terms, as R's binom.test."""
    import math

    if n == 0:
        return 1.0
    if p <= 0 or p >= 1:
        return 1.0 if (p <= 0 and x == 0) or (p >= 1 and x == n) else 0.0

    def logpmf(k: int) -> float:
        return (
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(p)
            + (n - k) * math.log1p(-p)
        )

    observed = logpmf(x) + 1e-7
    return min(1.0, sum(math.exp(lp) for lp in (logpmf(k) for k in range(n + 1)) if lp <= observed))


@given(
    n=st.sampled_from([0, 1, 2, 7, 50, 400, 3000, 40000]),
    share=st.floats(0, 1),
    p=st.one_of(st.floats(0, 1), st.sampled_from([1e-9, 0.5, 1 - 1e-9])),
)
@settings(max_examples=300, deadline=None)
def test_the_binomial_test_sums_only_the_terms_that_are_not_zero_to_the_same_float(n, share, p):
    from leakmap.analytics.diagnosis import _binom_two_sided

    x = round(share * n)
    assert _binom_two_sided(x, n, p) == _binom_by_every_term(x, n, p)
    # R: binom.test(7, 20, 0.5) → p = 0.2632
    assert _binom_two_sided(7, 20, 0.5) == pytest.approx(0.2632, abs=1e-4)
