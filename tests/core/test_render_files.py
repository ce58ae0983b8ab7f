"""The files each host gets (templates.py rendered), read as their readers read them: wg-quick's
INI, firewalld's XML, and the header that tells a person wgmesh manages the file."""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest

from wgmesh_core.plan import host_config, managed_hosts
from wgmesh_core.render import host_files
from wgmesh_core.validate import load_network

from tests.conftest import TODAY

from . import article_texts as art
from .conftest import parse_ini


def files_of(data, host) -> dict:
    spec = load_network(data)
    return {f.path: f.content for f in host_files(host_config(spec, host, TODAY, art.PUBLIC_KEYS, art.PSKS))}


@pytest.mark.parametrize("setup", [{}, {"backend": "wgquick", "firewall": "iptables"}], ids=["networkd", "wgquick"])
def test_every_file_says_that_wgmesh_manages_it(data, setup):
    data.update(setup)
    for host in managed_hosts(load_network(data)):
        for path, content in files_of(data, host).items():
            comments = [line for line in content.splitlines()[:3] if line.startswith(("#", "<!--"))]
            assert comments, f"{host} {path}: no header comment"
            assert comments[0].lstrip("#<!- ").startswith("Managed by wgmesh (Salt): "), (host, path, comments[0])


def test_the_wg_quick_file_as_wg_quick_reads_it(data):
    data["backend"] = "wgquick"
    conf = files_of(data, "z")["/etc/wireguard/wg0.conf"]
    assert conf.startswith("# Managed by wgmesh (Salt): local edits are reverted.\n[Interface]\n")
    entries = parse_ini(conf)
    assert [entry for entry in entries if entry[0] == 0] == [
        (0, "Interface", "Address", "10.70.0.1/16"), (0, "Interface", "ListenPort", "51820"),
        (0, "Interface", "MTU", "1280"), (0, "Interface", "Table", "off"),
        (0, "Interface", "PostUp", "wg set %i private-key /etc/wireguard/wg0.key"),
        (0, "Interface", "PostUp", "ip route replace 192.168.200.0/24 dev %i"),
        (0, "Interface", "PostUp", "ip route replace 192.168.201.0/24 dev %i")]
    assert {section for _, section, _, _ in entries} == {"Interface", "Peer"}
    assert [value for _, _, key, value in entries if key == "PublicKey"] == [
        art.PUBLIC_KEYS[name] for name in ("a", "c", "e", "f")]


def test_the_first_wg_quick_up_reads_the_interface_without_its_peers(data):
    """The module's first `wg-quick up` (the peers then go in with `wg syncconf`): the same
    [Interface] as the file wgmesh writes, and nothing after it."""
    from wgmesh_core.render import wg_quick_without_peers
    data["backend"] = "wgquick"
    spec = load_network(data)
    config = host_config(spec, "z", TODAY, art.PUBLIC_KEYS, art.PSKS)
    conf = files_of(data, "z")["/etc/wireguard/wg0.conf"]
    without = wg_quick_without_peers(config)
    assert without == conf[:conf.index("\n# gateway a\n[Peer]")]
    assert [entry for entry in parse_ini(without) if entry[1] != "Interface"] == []
    assert len(config.peers) == 4      # the plan keeps its peers


@pytest.mark.parametrize("backend, path, section", [("networkd", "/etc/systemd/network/wg0.netdev", "[WireGuardPeer]"),
                                                    ("wgquick", "/etc/wireguard/wg0.conf", "[Peer]")])
def test_each_peer_is_named_above_its_section(data, backend, path, section):
    """What a person reads in the file (and in the plan's diff of it): whose section this is."""
    data["backend"] = backend
    lines = files_of(data, "z")[path].splitlines()
    named = [next(line for line in reversed(lines[:i]) if line) for i, line in enumerate(lines) if line == section]
    assert named == ["# gateway a", "# gateway c", "# developer e", "# developer f"]


def test_the_firewalld_zone_and_policy_as_firewalld_reads_them(data):
    files = files_of(data, "z")
    zone = ElementTree.fromstring(files["/etc/firewalld/zones/wgmesh.xml"])
    assert (zone.tag, zone.attrib) == ("zone", {"target": "ACCEPT"})
    assert [(child.tag, child.attrib) for child in zone] == [("short", {}), ("description", {}),
                                                             ("interface", {"name": "wg0"})]
    assert zone.findtext("short") == "wgmesh"
    assert zone.findtext("description").startswith("The WireGuard tunnel of wgmesh. firewalld lets its traffic through")
    policy = ElementTree.fromstring(files["/etc/firewalld/policies/wgmesh-wireguard.xml"])
    assert (policy.tag, policy.attrib) == ("policy", {"target": "CONTINUE", "priority": "-100"})
    assert [(child.tag, child.attrib) for child in policy] == [
        ("short", {}), ("description", {}), ("ingress-zone", {"name": "ANY"}), ("egress-zone", {"name": "HOST"}),
        ("port", {"port": "51820", "protocol": "udp"})]
    assert policy.findtext("short") == "wgmesh-wireguard"
    assert policy.findtext("description") == "WireGuard peers reach this host's WireGuard port."


def unit_entries(content) -> list:
    return [(section, key, value) for _, section, key, value in parse_ini(content)]


def test_the_iptables_boot_unit_loads_the_rules_before_any_interface_comes_up(data):
    """Ordered before network-pre.target without the default dependencies (so before any interface,
    the tunnel's included, is up), one shot that stays active, wanted by sysinit.target; the jumps
    are deleted first (a restart must not add them twice), then the rules restored without a flush."""
    data["firewall"] = "iptables"
    unit = files_of(data, "a")["/etc/systemd/system/wgmesh-firewall.service"]
    assert unit_entries(unit) == [
        ("Unit", "Description", "wgmesh firewall rules for wg0 (iptables backend)"),
        ("Unit", "DefaultDependencies", "no"), ("Unit", "Wants", "network-pre.target"),
        ("Unit", "Before", "network-pre.target shutdown.target"), ("Unit", "Conflicts", "shutdown.target"),
        ("Service", "Type", "oneshot"), ("Service", "RemainAfterExit", "yes"),
        ("Service", "ExecStartPre", "-iptables -w -t filter -D FORWARD -i wg0 -j WGMESH-FORWARD"),
        ("Service", "ExecStartPre", "-iptables -w -t filter -D FORWARD -o wg0 -j WGMESH-FORWARD"),
        ("Service", "ExecStartPre", "-iptables -w -t filter -D INPUT -i wg0 -j WGMESH-INPUT"),
        ("Service", "ExecStartPre", "-iptables -w -t nat -D POSTROUTING -j WGMESH-POSTROUTING"),
        ("Service", "ExecStart", "iptables-restore -w --noflush /etc/wgmesh/iptables.rules"),
        ("Install", "WantedBy", "sysinit.target")]


def test_the_lan_routers_boot_unit_adds_the_route_once_the_network_is_online(data):
    """After network-online.target, retried every 5 s while the gateway is not yet on-link."""
    unit = files_of(data, "r1")["/etc/systemd/system/wgmesh-routes.service"]
    assert unit_entries(unit) == [
        ("Unit", "Description", "wgmesh: the VPN via the LAN's WireGuard gateway"),
        ("Unit", "Wants", "network-online.target"), ("Unit", "After", "network-online.target"),
        ("Service", "Type", "oneshot"), ("Service", "RemainAfterExit", "yes"),
        ("Service", "ExecStart", "ip route replace 10.70.0.0/16 via 192.168.201.247"),
        ("Service", "Restart", "on-failure"), ("Service", "RestartSec", "5"),
        ("Install", "WantedBy", "multi-user.target")]


def test_a_client_config_says_whose_it_is_and_how_to_put_the_key_in(spec):
    from wgmesh_core.render import client_config
    assert client_config(spec, "e").splitlines()[:4] == [
        "# wgmesh client config for developer e (10.70.0.0/16 via hub z).",
        "# Import it in the WireGuard app once your private key is in place (`wgmesh join` does that).",
        "[Interface]", "# PrivateKey = <your private key: it never leaves your machine>"]


@pytest.mark.parametrize("setup", [("networkd", "firewalld"), ("wgquick", "iptables")])
def test_a_hosts_files_are_its_groups_files_each_path_in_one_group(data, setup):
    """``host_files`` is ``host_file_group`` of each of ``FILE_GROUPS`` in turn (what `wgmesh plan`
    diffs a group at a time): the hub, the gateways, a LAN router and a host without a role."""
    from wgmesh_core.render import FILE_GROUPS, host_file_group
    data.update(backend=setup[0], firewall=setup[1])
    spec = load_network(data)
    hosts = [*managed_hosts(spec), "nobody"]
    assert any(host_config(spec, host, TODAY, art.PUBLIC_KEYS, art.PSKS).role == "lan_router" for host in hosts)
    for host in hosts:
        config = host_config(spec, host, TODAY, art.PUBLIC_KEYS, art.PSKS)
        groups = {group: host_file_group(config, group) for group in FILE_GROUPS}
        assert host_files(config) == [spec_file for files in groups.values() for spec_file in files], host
        paths = [spec_file.path for files in groups.values() for spec_file in files]
        assert len(paths) == len(set(paths)), host
        assert bool(groups["routes"]) == (config.role == "lan_router" and bool(config.static_routes)), host
        assert all(groups[group] for group in ("tunnel", "sysctl", "firewall")) == (config.role in ("hub", "gateway"))


def test_direct_xml_lets_its_rules_go_and_the_iptables_files_keep_theirs_for_the_comparison(spec):
    """A hub's direct.xml is made from rules not kept once it is written (50,000 developers:
    about 25 MB held while its text is made); the iptables backend's boot file keeps them for
    the comparison with the live chains that follows in a state run."""
    from wgmesh_core import firewall
    from wgmesh_core.render import firewall_files
    hub = host_config(spec, "z", TODAY, art.PUBLIC_KEYS, art.PSKS)
    firewall._kept_rules.cache_clear()
    assert [f.path for f in firewall_files(hub)][0] == firewall.DIRECT_FILE
    assert firewall._kept_rules.cache_info().currsize == 0
    on_iptables = host_config(load_network(dict(spec.model_dump(mode="json"), firewall="iptables")), "z", TODAY,
                              art.PUBLIC_KEYS, art.PSKS)
    firewall_files(on_iptables)
    assert firewall.chain_rules(on_iptables.firewall) is firewall.chain_rules(on_iptables.firewall)
    assert firewall._kept_rules.cache_info().currsize == 1
