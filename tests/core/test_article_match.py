"""The example pillar renders the article's files, key for key.

Deliberate, documented differences only:
- servers: ``PrivateKey=<inline>`` becomes ``PrivateKeyFile=/etc/systemd/network/wg0.key``;
- clients: no PrivateKey line (the developer adds it), and AllowedIPs
  10.70.0.0/16 + 192.168.0.0/16 instead of the two /24s (route-conflict fix);
- the hardening: the article's rules, each allow scoped to the tunnel and the LAN
  (``-d LAN -i wg0 -o <lan interface>``), in a chain wgmesh owns.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import pytest

from wgmesh_core.keys import key_problem
from wgmesh_core.plan import host_config
from wgmesh_core.render import client_config, host_files, iptables_restore
from wgmesh_core.validate import load_network

from . import article_texts as art
from .conftest import TODAY, parse_ini

KEY_FILE = "/etc/systemd/network/wg0.key"


def server_expected(article_text):
    """The article's netdev/network with the documented server difference applied."""
    out = []
    for ordinal, section, key, value in parse_ini(article_text):
        if section == "WireGuard" and key == "PrivateKey":
            key, value = "PrivateKeyFile", KEY_FILE
        out.append((ordinal, section, key, value))
    return out


def client_expected(article_text):
    """The article's client config with the documented client differences applied."""
    out = []
    for ordinal, section, key, value in parse_ini(article_text):
        if section == "Interface" and key == "PrivateKey":
            continue
        if key == "AllowedIPs" and value == "192.168.200.0/24":
            value = "192.168.0.0/16"
        elif key == "AllowedIPs" and value == "192.168.201.0/24":
            continue
        out.append((ordinal, section, key, value))
    return out


def files_of(spec, host):
    config = host_config(spec, host, TODAY, art.PUBLIC_KEYS, art.PSKS)
    return {f.path: f for f in host_files(config)}


def test_expected_transforms_really_change_the_article():
    # Guard against a vacuous comparison: the transforms touch exactly the documented lines.
    assert ("WireGuard", "PrivateKeyFile", KEY_FILE) in [e[1:] for e in server_expected(art.HUB_NETDEV)]
    assert not any(k == "PrivateKey" for _, _, k, _ in server_expected(art.A_NETDEV))
    e = client_expected(art.CLIENT_E)
    assert [v for _, _, k, v in e if k == "AllowedIPs"] == ["10.70.0.0/16", "192.168.0.0/16"]
    assert len(e) == len(parse_ini(art.CLIENT_E)) - 2


def test_example_pillar_is_valid(spec):
    assert spec.hub.minion == "z"
    assert spec.hub.endpoint == "39.101.166.124:51820"
    assert list(spec.gateways) == ["a", "c"]
    assert list(spec.developers) == ["e", "f"]


def test_hub_netdev_matches_article(spec):
    netdev = files_of(spec, "z")["/etc/systemd/network/wg0.netdev"]
    assert parse_ini(netdev.content) == server_expected(art.HUB_NETDEV)


def test_hub_network_matches_article(spec):
    network = files_of(spec, "z")["/etc/systemd/network/wg0.network"]
    assert parse_ini(network.content) == parse_ini(art.HUB_NETWORK)
    entries = [e[1:] for e in parse_ini(network.content)]
    assert ("Network", "Address", "10.70.0.1/16") in entries
    assert [v for s, k, v in entries if s == "Route" and k == "Destination"] == ["192.168.200.0/24", "192.168.201.0/24"]


@pytest.mark.parametrize("host, netdev, network", [
    ("a", art.A_NETDEV, art.A_NETWORK),
    ("c", art.C_NETDEV, art.C_NETWORK),
])
def test_gateway_files_match_article(spec, host, netdev, network):
    files = files_of(spec, host)
    assert parse_ini(files["/etc/systemd/network/wg0.netdev"].content) == server_expected(netdev)
    assert parse_ini(files["/etc/systemd/network/wg0.network"].content) == parse_ini(network)


@pytest.mark.parametrize("name, article", [("e", art.CLIENT_E), ("f", art.CLIENT_F)])
def test_client_config_matches_article(spec, name, article):
    text = client_config(spec, name, hub_public_key=art.HUB_PUBLIC, psk=art.PSKS[name])
    assert parse_ini(text) == client_expected(article)
    assert "PrivateKey =" not in text.replace("# PrivateKey =", "")


def test_client_config_with_private_key_puts_it_first(spec):
    text = client_config(spec, "e", hub_public_key=art.HUB_PUBLIC, psk=art.PSKS["e"],
                         private_key=art.PRIVATE_KEYS["e"])
    entries = parse_ini(text)
    assert entries[0] == (0, "Interface", "PrivateKey", art.PRIVATE_KEYS["e"])
    assert entries[1:] == client_expected(art.CLIENT_E)


def test_client_config_without_keys_has_no_fake_values(spec):
    """Placeholders, never made-up keys: the hub's key, and the preshared key the network uses
    (without its line the config looked finished, and the tunnel's handshakes failed)."""
    text = client_config(spec, "e")
    entries = [e[1:] for e in parse_ini(text)]
    for key in ("PublicKey", "PresharedKey"):
        (value,) = [v for s, k, v in entries if k == key]
        assert value.startswith("<") and key_problem(value), key     # an obvious placeholder, not a key
    without = client_config(spec.model_copy(update={"preshared_keys": False}), "e")
    assert not any(k == "PresharedKey" for _, k, _ in (e[1:] for e in parse_ini(without)))


def test_sysctl_file(spec):
    for host in ("z", "a", "c"):
        sysctl = files_of(spec, host)["/etc/sysctl.d/10-ip-forward.conf"]
        lines = [l for l in sysctl.content.splitlines() if l.strip() and not l.startswith("#")]
        assert lines == ["net.ipv4.ip_forward = 1"], host


def test_file_set_and_modes(spec):
    hub = files_of(spec, "z")
    firewalld = {"/etc/firewalld/direct.xml", "/etc/firewalld/zones/wgmesh.xml",
                 "/etc/firewalld/policies/wgmesh-wireguard.xml"}
    assert set(hub) == {"/etc/systemd/network/wg0.netdev", "/etc/systemd/network/wg0.network",
                        "/etc/sysctl.d/10-ip-forward.conf", "/etc/sysctl.d/10-wgmesh-rp-filter.conf"} | firewalld
    gateway = files_of(spec, "a")
    assert set(gateway) == {"/etc/systemd/network/wg0.netdev", "/etc/systemd/network/wg0.network",
                            "/etc/sysctl.d/10-ip-forward.conf"} | firewalld
    for files in (hub, gateway):
        netdev = files["/etc/systemd/network/wg0.netdev"]
        assert (netdev.mode, netdev.group, netdev.secret) == ("0640", "systemd-network", True)
        network = files["/etc/systemd/network/wg0.network"]
        assert network.secret is False
        assert network.mode in ("0644", "0640")


def article_allow_list_spec(data):
    # The article's allow-list on a is {10.70.0.3, 10.70.0.4}: c (lan_access [a]) and e; f has none.
    data["developers"]["f"]["lan_access"] = "none"
    return load_network(data)


def scoped(article_rule):
    """An article allow rule as wgmesh writes it: only from the tunnel into LAN1 on eth1."""
    return re.sub(r"^-s (\S+) ", r"-s \1 -d 192.168.201.0/24 -i wg0 -o eth1 ", article_rule)


def test_direct_xml_holds_the_articles_rules_scoped_to_the_tunnel(data):
    """The article's four direct rules (priorities 1, 2, 2, 10), in wgmesh's chain jumped to from
    FORWARD for what enters or leaves wg0: Docker's or libvirt's forwarding never meets its DROP."""
    spec = article_allow_list_spec(data)
    root = ElementTree.fromstring(files_of(spec, "a")["/etc/firewalld/direct.xml"].content)
    article = [(r.get("priority"), r.text) for r in ElementTree.fromstring(art.DIRECT_XML).iter("rule")]
    ours = [(r.get("priority"), r.text) for r in root.iter("rule") if r.get("chain") == "WGMESH-FORWARD"]
    established = article[0][1].replace("ESTABLISHED,RELATED", "RELATED,ESTABLISHED")
    assert ours == [("1", established)] + [(p, scoped(text)) for p, text in article[1:]]
    jumps = [(r.get("chain"), r.text) for r in root.iter("rule") if r.get("chain") == "FORWARD"]
    assert jumps == [("FORWARD", "-i wg0 -j WGMESH-FORWARD"), ("FORWARD", "-o wg0 -j WGMESH-FORWARD")]


def test_iptables_allow_list_matches_article_rules(data):
    spec = article_allow_list_spec(data)
    config = host_config(spec, "a", TODAY, art.PUBLIC_KEYS, art.PSKS)
    restore = iptables_restore(config)
    filter_rules = [l.split(" ", 2)[2] for l in restore.split("*nat")[0].splitlines()
                    if l.startswith("-A WGMESH-FORWARD ")]
    # The article's rule bodies, after `iptables -t filter -I FORWARD N`; `iptables -S`
    # prints the ctstate list as RELATED,ESTABLISHED, which the restore file uses.
    article = [cmd.split(" ", 6)[6] for cmd in art.IPTABLES_ALLOW]
    article[0] = article[0].replace("ESTABLISHED,RELATED", "RELATED,ESTABLISHED")
    assert filter_rules[0] == article[0]
    assert sorted(filter_rules[1:-1]) == sorted(scoped(rule) for rule in article[1:-1])
    assert filter_rules[-1] == article[-1] == "-j DROP"
    assert len(filter_rules) == 4


def test_masquerade_for_c_matches_article_command(spec):
    config = host_config(spec, "c", TODAY, art.PUBLIC_KEYS, art.PSKS)
    article_args = art.MASQUERADE_COMMAND.split("-A POSTROUTING ", 1)[1]
    assert config.firewall.masquerade == ("10.70.0.0/16", "192.168.200.0/24", "eth2")
    # iptables form: in the nat table, in wgmesh's POSTROUTING chain.
    restore = iptables_restore(config)
    nat = restore.split("*nat", 1)[1]
    assert f"-A WGMESH-POSTROUTING {article_args}" in nat.splitlines()
    assert "MASQUERADE" not in restore.split("*nat", 1)[0]
    # firewalld form: the same arguments in wgmesh's direct chain, jumped to from nat POSTROUTING.
    direct = files_of(spec, "c")["/etc/firewalld/direct.xml"].content
    assert (f'<rule ipv="ipv4" table="nat" chain="WGMESH-POSTROUTING" priority="2">{article_args}</rule>'
            in direct)
    assert '<rule ipv="ipv4" table="nat" chain="POSTROUTING" priority="0">-j WGMESH-POSTROUTING</rule>' in direct


def test_gateway_a_has_no_masquerade(spec):
    config = host_config(spec, "a", TODAY, art.PUBLIC_KEYS, art.PSKS)
    assert config.firewall.masquerade is None
    assert "MASQUERADE" not in iptables_restore(config)
    assert "MASQUERADE" not in files_of(spec, "a")["/etc/firewalld/direct.xml"].content
