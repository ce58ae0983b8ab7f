"""What the reactor's process keeps for the gates it forks (``wgmesh_salt.warm.keep``) is out of
the cyclic collector's reach until the next ``keep``, which lets the previous network go."""
import datetime
import gc
import weakref
from pathlib import Path

from wgmesh_core.validate import load_network
from wgmesh_salt import read_document, warm

PILLAR = Path(__file__).resolve().parents[2] / "pillar"
TODAY = datetime.date(2026, 1, 1)


def network():
    return load_network(read_document(PILLAR).network)


def tracked(value) -> bool:
    """Whether ``value`` is in one of the collector's generations (a frozen object is in none)."""
    return any(candidate is value for candidate in gc.get_objects())


def test_the_kept_network_is_frozen(warm_state):
    spec = network()
    configs = warm.keep("r1", spec, TODAY)
    assert gc.get_freeze_count() > 0
    assert not tracked(configs) and not tracked(configs["z"].peers)
    assert warm.recall("r1", TODAY) == (spec, configs)
    later = [configs]
    assert tracked(later)      # what the process makes afterwards is collected as usual


def test_the_next_keep_collects_the_network_kept_before(warm_state):
    configs = warm.keep("r1", network(), TODAY)
    configs.itself = configs         # a cycle: only the collector frees it
    gone = weakref.ref(configs)
    del configs
    warm.keep("r2", network(), TODAY)
    assert gone() is None
    assert warm.recall("r1", TODAY) is None and warm.recall("r2", TODAY) is not None
