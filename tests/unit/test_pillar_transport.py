"""What the gate accepts on the master is what the minion loads from the pillar Salt delivers:
Salt's transport (msgpack, ``salt.payload``) turns an integer from 2**64 on into text and a date
into a datetime, and the models are strict, so every integer field is bounded below that and a
day is read in both forms."""
from __future__ import annotations

import datetime

import salt.payload
from annotated_types import Le

from wgmesh_core.model import Developer, Gateway, Hub, NetworkSpec, Schedule
from wgmesh_core.validate import load_network

from tests.conftest import example_network_data

TODAY = datetime.date(2026, 1, 1)


def integer_bounds(model) -> dict:
    """{field: its upper bound} of every integer field of ``model`` (None: unbounded)."""
    return {name: next((m.le for m in field.metadata if isinstance(m, Le)), None)
            for name, field in model.model_fields.items() if field.annotation is int}


def test_every_integer_field_is_bounded_below_what_msgpack_carries_as_a_number():
    for model in (NetworkSpec, Hub, Gateway, Developer, Schedule):
        for name, bound in integer_bounds(model).items():
            assert bound is not None and bound < 2**63, f"{model.__name__}.{name}: {bound}"


def test_a_network_at_every_bound_loads_the_same_after_salts_transport():
    data = example_network_data()
    for name, bound in integer_bounds(NetworkSpec).items():
        data[name] = bound
    data["max_access_days"] = 36600
    data["hub"]["keepalive"] = integer_bounds(Hub)["keepalive"]
    data["schedule"] = {"drift_minutes": integer_bounds(Schedule)["drift_minutes"]}
    data["developers"]["e"]["expires"] = datetime.date(2026, 6, 1)      # a date object, as a YAML loader may give
    sent = load_network(data, today=TODAY)
    received = salt.payload.loads(salt.payload.dumps({"wgmesh": data}))["wgmesh"]
    assert isinstance(received["developers"]["e"]["expires"], datetime.datetime)    # what msgpack made of it
    assert load_network(received, today=TODAY) == sent
    assert sent.preshared_key_epoch == 2**32 - 1
