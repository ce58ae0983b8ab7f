"""Validation of any pillar a pull request can hold: accepted, or refused with problems; nothing else."""
from __future__ import annotations

from hypothesis import given

from wgmesh_core.render import client_config, host_files
from wgmesh_core.plan import host_config, managed_hosts
from wgmesh_core.validate import InvalidNetwork, Problem, load_network

from tests.conftest import TODAY

from .strategies import assert_printable, hostile_pillars, networks


def outcome(data):
    """The NetworkSpec, or the list of problems; any other exception fails the test."""
    try:
        return load_network(data)
    except InvalidNetwork as error:
        return error.problems


@given(hostile_pillars())
def test_any_pillar_is_accepted_or_refused_with_problems_never_an_other_error(data):
    result = outcome(data)
    if isinstance(result, list):
        assert result, "refused without a problem"
        for problem in result:
            assert isinstance(problem, Problem) and problem.where and problem.what
            assert "\n" not in str(problem), "one problem, one line: the CLI prints one per line"
        return
    # Accepted: every host and every developer renders, without a control character anywhere.
    for host in managed_hosts(result):
        for spec_file in host_files(host_config(result, host, TODAY)):
            assert_printable(spec_file.content)
    for name in result.developers:
        assert_printable(client_config(result, name))


@given(networks())
def test_generated_networks_are_accepted_unless_they_name_a_revoked_gateway(data):
    result = outcome(data)
    if isinstance(result, list):
        assert all(p.what.endswith("which is revoked") and p.where.endswith(".lan_access") for p in result), result
