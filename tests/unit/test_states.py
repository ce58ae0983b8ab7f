"""The wgmesh states: Salt's name/changes/result/comment from the execution module's report."""
from __future__ import annotations

import pytest
from salt.exceptions import CommandExecutionError

from .conftest import load_adapter

states = load_adapter("_states", "wgmesh")
STATES = [(states.private_key, "wgmesh.genkey"), (states.tunnel, "wgmesh.sync"),
          (states.firewall, "wgmesh.firewall"), (states.lan_routes, "wgmesh.routes")]


class Module:
    """Stands in for one wgmesh execution function: returns ``result`` and records ``test``."""

    def __init__(self, result):
        self.result, self.calls = result, []

    def __call__(self, test=False):
        self.calls.append(test)
        if isinstance(self.result, Exception):
            raise self.result
        return dict(self.result)


@pytest.fixture
def salt_functions():
    return {}


@pytest.fixture
def opts():
    return {"test": False}


@pytest.fixture
def configure_loader_modules(salt_functions, opts):
    return {states: {"__salt__": salt_functions, "__opts__": opts}}


@pytest.mark.parametrize("state, function", STATES)
def test_in_the_desired_state_nothing_changes(salt_functions, state, function):
    salt_functions[function] = Module({})
    ret = state("wg0")
    assert ret["name"] == "wg0" and ret["result"] is True and ret["changes"] == {}
    assert ret["comment"].endswith("is in the desired state")
    assert salt_functions[function].calls == [False]


@pytest.mark.parametrize("state, function", STATES)
def test_test_mode_reports_what_would_change_and_changes_nothing(salt_functions, opts, state, function):
    opts["test"] = True
    salt_functions[function] = Module({"peers": {"added": ["g"]}})
    ret = state("wg0")
    assert ret["result"] is None and ret["changes"] == {"peers": {"added": ["g"]}}
    assert " would be " in ret["comment"]
    assert salt_functions[function].calls == [True]


@pytest.mark.parametrize("state, function", STATES)
def test_a_module_error_fails_the_state_with_its_message(salt_functions, state, function):
    salt_functions[function] = Module(CommandExecutionError("wgmesh: firewalld is not running"))
    ret = state("wg0")
    assert ret["result"] is False and ret["comment"] == "wgmesh: firewalld is not running"


def test_the_tunnel_state_names_the_keys_it_waits_for(salt_functions):
    salt_functions["wgmesh.sync"] = Module({"pending": ["c", "g"], "peers": {"added": ["a"]}})
    ret = states.tunnel("wg0")
    assert ret["result"] is True and ret["changes"] == {"peers": {"added": ["a"]}}
    assert ret["comment"] == "tunnel wg0 updated; waiting for the public key of c, g (Salt mine); re-applied later"
    salt_functions["wgmesh.sync"] = Module({"pending": ["z"]})
    assert states.tunnel("wg0")["comment"] == ("tunnel wg0 is in the desired state; waiting for the public key "
                                              "of z (Salt mine); re-applied later")


def test_virtual_says_what_is_missing(salt_functions):
    assert states.__virtual__() == (False, "wgmesh: the wgmesh execution module is not available (see its "
                                           "load error; run saltutil.sync_all)")
    salt_functions["wgmesh.sync"] = Module({})
    assert states.__virtual__() == "wgmesh"
