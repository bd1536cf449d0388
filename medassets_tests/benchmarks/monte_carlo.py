"""What the coverage benchmarks share: their command line, and what they print of a simulated
share: its Monte Carlo standard error at the nominal level, and whether the share lies within
one of it."""

import argparse

import numpy as np


def command_line(description: str, quick: str = "100 datasets per setting") -> argparse.ArgumentParser:
    """A coverage benchmark's options: --datasets per setting (1000), and --quick (100)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def monte_carlo_se(datasets: int, nominal: float = 0.95) -> float:
    """The binomial standard error of a share of `datasets` at the nominal level."""
    return float(np.sqrt(nominal * (1 - nominal) / datasets))


def within(covered: int, datasets: int, nominal: float = 0.95, *, se: float | None = None) -> str:
    """`covered` of `datasets` as a share, and whether it lies within one standard error of
    `nominal`: the share's own, or `se` where given (another run's)."""
    share = covered / datasets
    se = monte_carlo_se(datasets, nominal) if se is None else se
    verdict = "yes" if abs(share - nominal) <= se else f"no ({(share - nominal) / se:+.1f} SE)"
    return f"{share:.3f} {verdict}"
