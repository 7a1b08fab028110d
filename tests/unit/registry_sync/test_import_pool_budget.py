"""The import's pool shares the worker's address-space cap: the worker
lowers its own cap by what each pool process gets, and starts only as many
as leave it its minimum. Each case in a process of its own: a lowered
limit cannot be raised again."""

from services.common.plumbing.testing import python_probe

PROBE = """
import json, resource, sys
from services.registry_sync.import_worker import _pool_size
mib = int(sys.argv[1])
if mib:
    resource.setrlimit(resource.RLIMIT_AS, (mib << 20, mib << 20))
workers, process_cap = _pool_size(int(sys.argv[2]))
soft = resource.getrlimit(resource.RLIMIT_AS)[0]
own = None if soft == resource.RLIM_INFINITY else soft >> 20
print(json.dumps([workers, own, process_cap]))
"""


def pool_size(cap_mib, wanted):
    return python_probe(PROBE, cap_mib, wanted)


def test_the_pool_fits_in_the_workers_cap_and_the_sum_stays_the_cap():
    assert pool_size(448, 2) == [1, 336, 112]  # the service's default cap
    assert pool_size(544, 2) == [2, 320, 112]
    assert pool_size(544, 1) == [1, 432, 112]
    assert pool_size(400, 2) == [0, 400, 112]  # no room: all in the worker
    assert pool_size(0, 2) == [2, None, None]  # no cap, none for the pool either
