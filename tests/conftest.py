"""How this suite tests.

* ``unit/`` — domain rules and plumbing with no broker and no database; runs
  on a bare machine (``make unit``).
* ``integration/`` — one service (or plumbing piece) in a real Nameko
  container against the real RabbitMQ and PostgreSQL of this machine: each
  test gets a throw-away vhost (Nameko's ``rabbit_config``), each run fresh
  databases named after a random run id, dropped at the end.
* ``e2e/`` — the whole platform started the way ``make run`` starts it (one
  ``nameko run`` process per service) with its own vhost, databases and
  ports, driven over HTTP.

If RabbitMQ or PostgreSQL cannot be reached the integration and e2e tiers
stop the run with an error: they never skip.

Speed is measured in ``bench/``, never asserted here.
"""

import os
import warnings

# Tests run on the shipped development keys and say so (the services refuse
# them otherwise; see services/common/plumbing/config.py).
os.environ.setdefault("DEVELOPMENT_MODE", "true")

# eventlet warns on import that it is in bug-fix-only mode (see README).
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

# Since Nameko 2.13 its pytest plugin no longer monkey-patches; without this
# the suite hangs. No arguments: monkey_patch(psycopg=True) alone deadlocked
# the connection pool. `make mutate` runs only the unit tier, which needs no
# green threads, inside mutmut, whose own threads and locks must stay real.
if not os.environ.get("TESTS_WITHOUT_EVENTLET"):
    eventlet.monkey_patch()


import pytest  # noqa: E402


@pytest.fixture
def web_port():
    """A free local port for a gateway under test."""
    from nameko.testing.utils import find_free_port

    return find_free_port()
