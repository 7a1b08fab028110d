"""Fuzzing of the pure parsers with hypothesis: bounded in ``make test``
(``FUZZ_EXAMPLES``, default 300 per property), long in ``make fuzz``
(20,000 fresh ones per property; FUZZ_EXAMPLES sets it). No broker, no database.

Each property states what a parser promises for *any* input: an answer or
its documented refusal — never another exception — and, for what it
accepts, the invariants the rest of the platform relies on.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,  # a slow first call (OpenCC's dictionaries) is not a bug
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    print_blob=True,
)
settings.load_profile("fuzz")
