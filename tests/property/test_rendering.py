"""What every accepted network renders: the invariants the README promises, over random networks.

Each host is planned the way Salt plans it: host public keys as the mine would have them, and
the preshared keys the ``wgmesh_secrets`` ext_pillar gives that host (``preshared_keys_for``).
"""
from __future__ import annotations

import base64
import dataclasses
import itertools
import re

import netaddr
from hypothesis import given

from wgmesh_core.plan import (RFC1918, client_routes, host_config, managed_hosts, peer_psk,
                              preshared_keys_for)
from wgmesh_core.render import client_config, host_files, iptables_restore, wg_setconf

from tests.conftest import TODAY

from .strategies import accepted, assert_printable, networks

SECRET = bytes(range(32))
PRIVATE_KEY = base64.b64encode(bytes(range(1, 33))).decode()


def host_keys(spec):
    """Distinct public keys for the hub and gateways, as the Salt mine would hold them."""
    return {host: base64.b64encode(bytes(30) + bytes([1, i])).decode()
            for i, host in enumerate(managed_hosts(spec))}


def plan(spec, host):
    return host_config(spec, host, TODAY, host_keys(spec),
                       preshared_keys_for(spec, host, SECRET, spec.preshared_key_epoch))


def active_gateways(spec):
    return {gid: gw for gid, gw in spec.gateways.items() if not gw.revoked}


def active_developers(spec):
    return {name: dev for name, dev in spec.developers.items()
            if not dev.revoked and (dev.expires is None or dev.expires >= TODAY)}


def reachable(spec, access):
    """Gateway ids whose LAN a peer with this ``lan_access`` may reach: the access relation."""
    gateways = active_gateways(spec)
    if access == "all":
        return set(gateways)
    return set() if access == "none" else {gid for gid in access if gid in gateways}


@given(networks())
def test_the_hub_has_one_peer_per_active_node_with_disjoint_allowed_ips(data):
    spec = accepted(data)
    hub = plan(spec, spec.hub.minion)
    names = [peer.name for peer in hub.peers]
    assert sorted(names) == sorted([*active_gateways(spec), *active_developers(spec)])
    assert len(set(names)) == len(names) and not hub.pending
    assert len({peer.public_key for peer in hub.peers}) == len(hub.peers)
    for peer in hub.peers:
        node = spec.gateways.get(peer.name) or spec.developers[peer.name]
        expected = (f"{node.address}/32", str(node.lan)) if peer.kind == "gateway" else (f"{node.address}/32",)
        assert peer.allowed_ips == expected
    routed = [(peer.name, netaddr.IPNetwork(ip)) for peer in hub.peers for ip in peer.allowed_ips]
    for (one, a), (other, b) in itertools.combinations(routed, 2):
        assert not (a.first <= b.last and b.first <= a.last), f"{one} {a} overlaps {other} {b}"
    assert hub.interface_routes == [str(gw.lan) for gw in sorted(active_gateways(spec).values(),
                                                                  key=lambda gw: gw.lan)]


@given(networks())
def test_allow_lists_are_exactly_the_access_relation(data):
    spec = accepted(data)
    for gid, gateway in spec.gateways.items():
        config = plan(spec, gid)
        if gateway.revoked:
            assert config.role == "none" and host_files(config) == []
            continue
        sources = [(other.address, other.lan_access) for other_id, other in active_gateways(spec).items()
                   if other_id != gid]
        sources += [(dev.address, dev.lan_access) for dev in active_developers(spec).values()]
        allowed = sorted(address for address, access in sources if gid in reachable(spec, access))
        assert config.firewall.allow_sources == tuple(f"{address}/32" for address in allowed)
        assert f"{spec.hub.address}/32" not in config.firewall.allow_sources
        # ... and the rendered rules say exactly that, in both firewall backends
        rules = iptables_restore(config)
        scope = re.escape(f"-d {gateway.lan} -i {spec.interface} -o {gateway.lan_interface} -m conntrack --ctstate NEW")
        assert re.findall(rf"-A WGMESH-FORWARD -s (\S+) {scope} -j ACCEPT", rules) == list(config.firewall.allow_sources)
        direct = [f for f in host_files(config) if f.path.endswith("direct.xml")]
        if config.firewall.backend == "firewalld":
            (xml,) = direct
            assert re.findall(rf'chain="WGMESH-FORWARD" priority="2">-s (\S+) {scope}', xml.content) \
                == list(config.firewall.allow_sources)
        else:
            assert direct == []
        masquerade = re.findall(r"-A WGMESH-POSTROUTING (.*) -j MASQUERADE", rules)
        expected = [f"-s {spec.network} -d {gateway.lan} -o {gateway.lan_interface}"]
        assert masquerade == (expected if gateway.lan_mode == "masquerade" else [])


@given(networks())
def test_preshared_keys_match_on_both_ends(data):
    spec = accepted(data)
    hub = {peer.name: peer for peer in plan(spec, spec.hub.minion).peers}
    hub_key = host_keys(spec)[spec.hub.minion]
    for gid in active_gateways(spec):
        # the ext_pillar gives a gateway its own key and nobody else's
        assert list(preshared_keys_for(spec, gid, SECRET, spec.preshared_key_epoch)) == [gid]
        (to_hub,) = plan(spec, gid).peers
        assert (to_hub.name, to_hub.public_key, to_hub.allowed_ips) == (spec.hub.minion, hub_key, (str(spec.network),))
        assert to_hub.preshared_key == hub[gid].preshared_key
        assert (to_hub.preshared_key is not None) == spec.preshared_keys
    for name in active_developers(spec):
        psk = peer_psk(spec, name, SECRET, spec.preshared_key_epoch)   # what the runner puts in the client
        client = client_config(spec, name, hub_public_key=hub_key, psk=psk)
        lines = client.splitlines()
        assert (f"PresharedKey = {hub[name].preshared_key}" in lines) == spec.preshared_keys
        assert f"PublicKey = {hub_key}" in lines
        assert hub[name].public_key == spec.developers[name].public_key


@given(networks())
def test_no_rendered_line_holds_a_control_character(data):
    spec = accepted(data)
    for host in managed_hosts(spec):
        config = plan(spec, host)
        texts = [f.content for f in host_files(config)]
        if config.role in ("hub", "gateway"):
            texts.append(wg_setconf(config, PRIVATE_KEY))
        if config.firewall:
            texts.append(iptables_restore(config))
        for text in texts:
            assert_printable(text)
    for name in spec.developers:
        assert_printable(client_config(spec, name))


def private_block(lan):
    """The RFC 1918 block holding ``lan``; a public LAN is its own block (never covered)."""
    return next((block for block in RFC1918 if lan in block), lan)


def acceptable_cover(prefix, block, lans, forbidden):
    return (prefix in block and all(prefix.prefixlen < lan.prefixlen for lan in lans)
            and not any(prefix.first <= f.last and f.first <= prefix.last for f in forbidden))


@given(networks())
def test_client_routes_cover_every_reachable_lan_and_no_forbidden_one_with_the_narrowest_cover(data):
    spec = accepted(data)
    vpn = spec.network
    gateways = active_gateways(spec)
    for name in active_developers(spec):
        developer = spec.developers[name]
        allowed = [netaddr.IPNetwork(ip) for ip in client_routes(spec, name).allowed_ips]
        lans = sorted(gateways[gid].lan for gid in reachable(spec, developer.lan_access))
        forbidden = [vpn] + [gw.lan for gw in gateways.values() if gw.lan not in lans]
        assert allowed[0] == vpn and len(set(allowed)) == len(allowed)
        rest = allowed[1:]
        for route in rest:
            assert not any(route.first <= f.last and f.first <= route.last for f in forbidden), route
        for lan in lans:
            assert any(lan in route for route in rest), f"{name}: {lan} not routed"
        if developer.platform == "windows" or not lans:
            assert rest == lans
            continue
        groups = {}
        for lan in lans:
            groups.setdefault(private_block(lan), []).append(lan)
        for block, members in groups.items():
            covers = [route for route in rest if any(lan in route for lan in members)]
            if covers == members:       # exact LANs: only when no acceptable cover exists at all
                span = netaddr.spanning_cidr(members) if len(members) > 1 else members[0]
                supernets = [span.supernet(length)[0] for length in range(span.prefixlen)] + [span]
                assert not any(acceptable_cover(p, block, members, forbidden) for p in supernets), members
                continue
            (cover,) = covers
            assert all(lan in cover for lan in members)
            assert acceptable_cover(cover, block, members, forbidden), cover
            if cover != block:          # the block itself is ruled out, and no narrower cover exists
                assert not acceptable_cover(block, block, members, forbidden)
                halves = cover.subnet(cover.prefixlen + 1)
                assert not any(acceptable_cover(half, block, members, forbidden)
                               and all(lan in half for lan in members) for half in halves)
        # nothing routed that is neither the VPN, a cover of reachable LANs, nor one of them
        assert all(any(lan in route for lan in lans) for route in rest)


@given(networks())
def test_the_lan_sources_of_one_pass_are_each_gateways_allow_list_as_first_written(data):
    """``lan_sources`` (one pass over the peers, sorted by the addresses' integers) gives every
    gateway the allow-list of the per-gateway filter sorted by netaddr; the hub's developer list
    too."""
    from wgmesh_core.plan import allowed_sources, hub_firewall, lan_sources
    spec = accepted(data)
    gateways = active_gateways(spec)
    peers = [(gw.address, gw.lan_access, gid) for gid, gw in gateways.items()]
    peers += [(dev.address, dev.lan_access, None) for dev in active_developers(spec).values()]
    expected = {gid: [f"{address}/32" for address in sorted(address for address, access, own in peers
                                                            if own != gid and gid in reachable(spec, access))]
                for gid in gateways}
    assert lan_sources(spec, TODAY) == expected
    assert {gid: allowed_sources(spec, gid, TODAY) for gid in gateways} == expected
    developers = tuple(sorted((f"{dev.address}/32" for dev in active_developers(spec).values()), key=netaddr.IPNetwork))
    assert hub_firewall(spec, TODAY).developers == (developers if spec.developer_to_developer else ())


OLD_DIRECT_XML = """\
<?xml version="1.0" encoding="utf-8"?>
<!-- Managed by wgmesh (Salt): local edits are reverted. -->
<direct>
{% for chain in chains %}  <chain ipv="ipv4" table="{{ chain[0] }}" chain="{{ chain[1] }}"/>
{% endfor %}{% for r in rules %}  <rule ipv="ipv4" table="{{ r.table }}" chain="{{ r.chain }}" priority="{{ r.priority }}">{{ r.args }}</rule>
{% endfor %}</direct>
"""


@given(networks())
def test_direct_xml_is_the_text_of_the_template_that_wrote_each_rule_in_jinja(data):
    """direct.xml's rule lines are made in Python (a hub has about five per developer): the file
    is the one the template writing each rule's attributes in Jinja gave."""
    import jinja2
    from wgmesh_core import firewall
    spec = accepted(data)
    for host in managed_hosts(spec):
        config = plan(spec, host)
        if config.firewall is None:
            continue
        config = dataclasses.replace(config, firewall=dataclasses.replace(config.firewall, backend="firewalld"))
        files = {f.path: f.content for f in host_files(config)}
        expected = jinja2.Template(OLD_DIRECT_XML, keep_trailing_newline=True).render(
            chains=firewall.CHAINS, rules=firewall.rules(config.firewall))
        assert files[firewall.DIRECT_FILE] == expected, host
