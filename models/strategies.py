"""Names of the relabel-query strategies (no heavy imports: the CLI builds its choices
from them). What each does: :mod:`models.selection`; which wins: the README's
active-learning benchmark."""

QUERY_STRATEGIES = ("per-class", "hybrid", "diverse", "uncertainty")
DEFAULT_QUERY_STRATEGY = "per-class"
#: The simulated-oracle benchmark's arms: random selection, then every query strategy.
BENCHMARK_STRATEGIES = ("random", *QUERY_STRATEGIES)
