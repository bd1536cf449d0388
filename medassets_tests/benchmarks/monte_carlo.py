"""What the coverage benchmarks print of a simulated share: its Monte Carlo standard error at
the nominal level, and whether the share lies within one of it."""

import numpy as np


def monte_carlo_se(datasets: int, nominal: float = 0.95) -> float:
    """The binomial standard error of a share of `datasets` at the nominal level."""
    return float(np.sqrt(nominal * (1 - nominal) / datasets))


def within(covered: int, datasets: int, nominal: float = 0.95) -> str:
    """`covered` of `datasets` as a share, and whether it lies within one standard error of `nominal`."""
    share, se = covered / datasets, monte_carlo_se(datasets, nominal)
    verdict = "yes" if abs(share - nominal) <= se else f"no ({(share - nominal) / se:+.1f} SE)"
    return f"{share:.3f} {verdict}"
