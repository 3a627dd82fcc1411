"""How many inputs each property tries, and a tally of how many it did.

The default tier keeps the whole ``tests/fuzz`` package under about a minute on a
2-core machine; ``CAIRN_SLOW=1`` multiplies every budget by :data:`SLOW_FACTOR`.
Every property calls :func:`tried` once per example with its parser family, and the
package's ``conftest.py`` prints the tally at the end of the run (and writes it as JSON
to ``$CAIRN_FUZZ_REPORT`` when set), so docs/reliability.md can quote real figures.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings

__all__ = ["SLOW", "SLOW_FACTOR", "TALLY", "budget", "tried"]

SLOW = bool(os.environ.get("CAIRN_SLOW"))
SLOW_FACTOR = 20
#: Examples run per parser family in this session.
TALLY: Counter[str] = Counter()


def budget(examples: int, **extra: Any) -> settings:
    """Hypothesis settings for ``examples`` inputs (times :data:`SLOW_FACTOR` under CAIRN_SLOW)."""
    return settings(
        max_examples=examples * SLOW_FACTOR if SLOW else examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        **extra,
    )


def tried(family: str, count: int = 1) -> None:
    """Count ``count`` inputs given to a parser of ``family`` (``digest``, ``manifest``, ...)."""
    TALLY[family] += count
