"""The wgmesh.client_config runner's refusals (MOCKS as in test_runner.py: the master's pillar and
mine): a config it writes is one the developer's tunnel works with, or none is written."""
from __future__ import annotations

import os

import pytest

from wgmesh_core import pins

from .conftest import load_adapter
from .test_runner import Cache, Pillar, mine, pillar, runner  # noqa: F401 (its fixtures)

secrets = load_adapter("_pillar", "wgmesh_secrets")


@pytest.fixture
def opts(tmp_path):
    """The ext_pillar configured with its defaults (README: `- wgmesh_secrets: {}`)."""
    return {"id": "master", "cachedir": str(tmp_path / "cache"), "sock_dir": str(tmp_path / "sock"),
            "ext_pillar": [{"wgmesh_secrets": {}}]}


@pytest.fixture
def configure_loader_modules(opts, pillar, mine, monkeypatch, tmp_path):
    monkeypatch.setattr(runner.salt.pillar, "get_pillar", lambda *a, **k: Pillar(pillar))
    import salt.cache
    monkeypatch.setattr(salt.cache, "factory", lambda opts: Cache(mine))
    # the default secret file (/etc/salt/wgmesh/psk.secret), moved under tmp_path for the test
    monkeypatch.setattr(pins, "DEFAULT_SECRET_FILE", str(tmp_path / "etc" / "psk.secret"))
    return {runner: {"__opts__": opts, "__salt__": {}}, secrets: {"__opts__": {"id": "master"}}}


def written(opts):
    folder = os.path.join(opts["cachedir"], "wgmesh", "clients")
    return os.listdir(folder) if os.path.isdir(folder) else []


def test_with_the_ext_pillars_default_secret_the_config_carries_the_psk_the_hub_was_given(pillar):
    """The ext_pillar reads its default secret file when none is set: so does the runner (it
    wrote a config without a preshared key, and the developer's handshakes failed)."""
    hub_psk = secrets.ext_pillar("z", pillar)["wgmesh_psk"]["e"]
    text = open(runner.client_config("e")["path"]).read()
    assert f"PresharedKey = {hub_psk}" in text.splitlines(), text
    assert runner._pin_file() == str(pins.default_pin_file(pins.DEFAULT_SECRET_FILE))


def test_without_the_ext_pillar_no_config_is_written_for_a_network_of_preshared_keys(opts, pillar):
    opts["ext_pillar"] = []
    with pytest.raises(runner.SaltInvocationError, match="uses preshared keys and the master has none"):
        runner.client_config("e")
    assert written(opts) == []
    pillar["wgmesh"]["preshared_keys"] = False          # a network without them: the config is complete
    assert "PresharedKey" not in open(runner.client_config("e")["path"]).read()


def test_no_config_is_written_while_the_hubs_key_is_unknown(mine, opts):
    del mine["z"]                            # the hub has not published its key yet
    with pytest.raises(runner.SaltInvocationError, match="the hub z's public key is not known to the master yet"):
        runner.client_config("e")
    assert written(opts) == []


@pytest.mark.parametrize("name", ["007", "on", "1.5", "null"])
def test_a_name_salts_command_line_reads_as_another_type_is_refused_with_how_to_quote_it(pillar, opts, name):
    """`salt-run wgmesh.client_config 007` hands the runner 7 (salt.utils.args.parse_input reads
    arguments as YAML): refused, saying how to quote it, and quoted it reaches the developer."""
    import salt.utils.args
    pillar["wgmesh"]["developers"][name] = dict(pillar["wgmesh"]["developers"].pop("f"))
    (parsed,) = salt.utils.args.parse_input([name])
    with pytest.raises(runner.SaltInvocationError, match="""quote it: name="'NAME'\""""):
        runner.client_config(parsed)
    _, kwargs = salt.utils.args.parse_input([f"name='{name}'"], condition=False)
    assert runner.client_config(**kwargs)["developer"] == name
