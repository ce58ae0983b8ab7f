"""Hypothesis strategies: random wgmesh networks (the ``wgmesh`` pillar value).

``networks()`` draws networks that are valid by construction most of the time: any number of
gateways (LANs of any size in the private blocks and in public space, disjoint), LAN routers,
developers with access lists, platforms, expiry dates around ``TODAY`` and revocations.
``hostile_pillars()`` then breaks such a network the way a careless or hostile pull request
would: values replaced by text (with control characters), numbers, lists or nothing, keys
misspelt or deleted, names reused.
"""
from __future__ import annotations

import base64
import copy
import datetime

import netaddr
from hypothesis import strategies as st

from tests.conftest import TODAY

# VPN networks to draw from: the article's, small ones, and ones outside the private blocks.
VPNS = ["10.70.0.0/16", "10.0.0.0/24", "172.16.0.0/20", "192.168.100.0/24", "100.64.0.0/16"]
# Where LANs come from: the three private blocks, and public space (a LAN is not always private).
LAN_BLOCKS = [netaddr.IPNetwork(b) for b in
              ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "198.18.0.0/15", "100.64.0.0/10")]
PRIVATE_RANGES = [netaddr.IPNetwork(b) for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]
GATEWAY_IDS = ["a", "b", "c", "gw-1", "gw.2"]
DEVELOPER_NAMES = ["e", "f", "g", "h", "dev-1", "dev.2", "x9"]
PLATFORMS = ["linux", "macos", "windows", "ios", "android"]


def overlaps(a, b) -> bool:
    return a.first <= b.last and b.first <= a.last


@st.composite
def lans(draw, vpn, count):
    """Up to ``count`` LANs, pairwise disjoint and disjoint from the VPN."""
    chosen = []
    favourite = draw(st.sampled_from(LAN_BLOCKS))   # LANs sharing a block make the route cover interesting
    for _ in range(count):
        block = draw(st.one_of(st.just(favourite), st.sampled_from(LAN_BLOCKS)))
        prefixlen = draw(st.integers(block.prefixlen + 1, 30))
        size = 2 ** (32 - prefixlen)
        # near the start of the block most of the time: neighbours make the route cover interesting
        index = draw(st.one_of(st.integers(0, 7), st.integers(0, 2 ** (prefixlen - block.prefixlen) - 1)))
        lan = netaddr.IPNetwork(f"{netaddr.IPAddress(block.first + index * size)}/{prefixlen}")
        if not overlaps(lan, vpn) and not any(overlaps(lan, other) for other in chosen):
            chosen.append(lan)
    return chosen


def public_keys(count, salt):
    """``count`` distinct well-formed WireGuard public keys (the third byte keeps them off the
    all-zero key and the other low-order points, which validation refuses)."""
    return [base64.b64encode(bytes([salt, i, 1]) + bytes(29)).decode() for i in range(count)]


@st.composite
def lan_access(draw, gateway_ids):
    some = st.lists(st.sampled_from(gateway_ids), min_size=1, unique=True) if gateway_ids else st.just([])
    return draw(st.one_of(st.just("all"), st.just("none"), some, some))


@st.composite
def networks(draw):
    """A ``wgmesh`` pillar value, valid unless it happens to name a revoked gateway in an access list."""
    vpn = netaddr.IPNetwork(draw(st.sampled_from(VPNS)))
    hosts = iter(vpn.iter_hosts())
    gateway_count = draw(st.sampled_from([0, 1, 2, 3, 3, 4, 4, 5, 5, 5]))
    gateway_lans = draw(lans(vpn, gateway_count))
    gateway_ids = GATEWAY_IDS[:len(gateway_lans)]
    revoked = {gid for gid in gateway_ids if draw(st.integers(0, 4)) == 0}
    # access lists name active gateways, now and then a revoked one (refused by validation)
    nameable = gateway_ids if draw(st.integers(0, 9)) == 0 else [g for g in gateway_ids if g not in revoked]
    data = {
        "network": str(vpn),
        "hub": {"minion": "z", "address": str(next(hosts)),
                "endpoint": draw(st.sampled_from(["203.0.113.1", "203.0.113.1:4500", "vpn.example.com",
                                                  "vpn.example.com:51821"]))},
    }
    if any(not any(lan in block for block in PRIVATE_RANGES) for lan in gateway_lans):
        data["allow_public_lan"] = True
    for key, value in (("listen_port", st.integers(1, 65535)), ("keepalive", st.integers(0, 60)),
                       ("mtu", st.integers(576, 9000)), ("preshared_keys", st.booleans()),
                       ("preshared_key_epoch", st.integers(0, 3)),
                       ("backend", st.sampled_from(["networkd", "wgquick"])),
                       ("firewall", st.sampled_from(["firewalld", "iptables"]))):
        if draw(st.booleans()):
            data[key] = draw(value)
    gateways = {}
    for gid, lan in zip(gateway_ids, gateway_lans):
        gateway = {"address": str(next(hosts)), "lan": str(lan),
                   "lan_address": str(netaddr.IPAddress(lan.first + (1 if lan.prefixlen < 31 else 0)))}
        if draw(st.booleans()):
            gateway["lan_mode"] = draw(st.sampled_from(["route", "masquerade"]))
        if draw(st.booleans()):
            gateway["lan_router"] = f"r-{gid}"
        if draw(st.booleans()):
            gateway["lan_access"] = draw(lan_access([g for g in nameable if g != gid]))
        if gid in revoked:
            gateway["revoked"] = True
        if draw(st.booleans()):
            gateway["firewall"] = draw(st.sampled_from(["firewalld", "iptables"]))
        gateways[gid] = gateway
    if gateways or draw(st.booleans()):
        data["gateways"] = gateways
    names = DEVELOPER_NAMES[:draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 7]))]
    developers = {}
    for name, key in zip(names, public_keys(len(names), draw(st.integers(0, 255)))):
        developer = {"address": str(next(hosts)), "public_key": key}
        if draw(st.integers(0, 3)):
            developer["lan_access"] = draw(lan_access(nameable))
        if draw(st.booleans()):
            developer["platform"] = draw(st.sampled_from(PLATFORMS))
        if draw(st.integers(0, 2)) == 0:
            developer["expires"] = TODAY + datetime.timedelta(days=draw(st.integers(-3, 3)))
        if draw(st.integers(0, 4)) == 0:
            developer["revoked"] = True
        developers[name] = developer
    data["developers"] = developers
    return data


def _toggle(entry, key):
    entry[key] = not entry.get(key, False)


@st.composite
def changed(draw, data):
    """``data`` after 0-4 edits of the kind pull requests make (onboard, revoke, re-key, grant, ...)."""
    data = copy.deepcopy(data)
    gateways, developers = data.setdefault("gateways", {}), data["developers"]
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.sampled_from(["revoke developer", "delete developer", "add developer", "rekey",
                                     "access", "expiry", "revoke gateway", "delete gateway", "lan mode",
                                     "router", "epoch", "psk off", "backend", "firewall", "port", "endpoint"]))
        developer = draw(st.sampled_from(sorted(developers))) if developers else None
        gateway = draw(st.sampled_from(sorted(gateways))) if gateways else None
        if edit == "revoke developer" and developer:
            _toggle(developers[developer], "revoked")
        elif edit == "delete developer" and developer:
            del developers[developer]
        elif edit == "add developer" and "new" not in developers:
            used = {entry["address"] for entry in [data["hub"], *gateways.values(), *developers.values()]}
            address = next(a for a in ("100.64.0.200", "10.70.0.200", "10.0.0.200", "172.16.0.200",
                                       "192.168.100.200", "10.70.0.201") if a not in used)
            developers["new"] = {"address": address, "public_key": "N" * 42 + "A=",
                                 "lan_access": draw(lan_access(sorted(gateways)))}
        elif edit == "rekey" and developer:
            developers[developer]["public_key"] = "K" * 42 + "A="
        elif edit == "access":
            target = developers.get(developer) if draw(st.booleans()) else gateways.get(gateway)
            if target is not None:
                target["lan_access"] = draw(lan_access(sorted(gateways)))
        elif edit == "expiry" and developer:
            developers[developer]["expires"] = TODAY + datetime.timedelta(days=draw(st.integers(-2, 2)))
        elif edit == "revoke gateway" and gateway:
            _toggle(gateways[gateway], "revoked")
        elif edit == "delete gateway" and gateway:
            del gateways[gateway]
        elif edit == "lan mode" and gateway:
            gateways[gateway]["lan_mode"] = draw(st.sampled_from(["route", "masquerade"]))
        elif edit == "router" and gateway:
            gateways[gateway]["lan_router"] = draw(st.sampled_from([None, f"r-{gateway}", f"other-{gateway}"]))
        elif edit == "epoch":
            data["preshared_key_epoch"] = data.get("preshared_key_epoch", 0) + 1
        elif edit == "psk off":
            _toggle(data, "preshared_keys")
        elif edit in ("backend", "firewall"):
            choices = {"backend": ["networkd", "wgquick"], "firewall": ["firewalld", "iptables"]}[edit]
            data[edit] = draw(st.sampled_from(choices))
        elif edit == "port":
            data["listen_port"] = draw(st.sampled_from([51820, 51821]))
        elif edit == "endpoint":
            data["hub"]["endpoint"] = draw(st.sampled_from(["203.0.113.1", "203.0.113.2:51820"]))
    return data


@st.composite
def network_pairs(draw):
    old = draw(networks())
    return old, draw(changed(old))


def _paths(value, prefix=()):
    """Every (path, value) inside nested dicts and lists."""
    yield prefix, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


def _parent(data, path):
    for part in path[:-1]:
        data = data[part]
    return data


# Values a pull request may put anywhere: text with control characters, look-alikes of valid
# values, numbers, nothing, containers.
JUNK = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "all", "none", "10.70.0.1", "10.70.0.1/32", "192.168.0.0/16", "0.0.0.0/0",
                     "a\nb", "z", "a", "e", "-1", "9" * 20, "vpn.example.com:0", "1.2.3.4:65536",
                     "x" * 70, "eth0; reboot", "wg0\n[Peer]", "2025-02-30", "A" * 43 + "="]),
    st.integers(-2 ** 40, 2 ** 40), st.floats(allow_nan=True), st.none(), st.booleans(),
    st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.dates(),
)


@st.composite
def hostile_pillars(draw):
    """A random network with 1-3 random breakages; sometimes not even a mapping."""
    if draw(st.integers(0, 30)) == 0:
        return draw(JUNK)
    data = copy.deepcopy(draw(networks()))
    for _ in range(draw(st.integers(1, 3))):
        paths = [path for path, _ in _paths(data) if path]
        if not paths:
            break
        action = draw(st.sampled_from(["copy", "copy", "copy", "replace", "replace", "delete", "rename", "add"]))
        shared = [path for path in paths if len(path) == 3 and sum(other[-1] == path[-1] for other in paths) > 1]
        path = draw(st.sampled_from(shared if action == "copy" and shared else paths))
        parent = _parent(data, path)
        same_field = [other for other in paths if len(other) == 3 and other[-1] == path[-1] and other != path]
        if action == "copy" and same_field:
            # another entry's value for the same field: duplicate addresses, keys, overlapping LANs
            source = draw(st.sampled_from(same_field))
            parent[path[-1]] = copy.deepcopy(_parent(data, source)[source[-1]])
        elif action in ("copy", "replace"):
            parent[path[-1]] = draw(JUNK)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict) and action == "rename":
            parent[draw(st.sampled_from(["z", "a", "e", "r-a", "lan_acess", "", "a b", "Ä", "x" * 70]))] = \
                parent.pop(path[-1])
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(JUNK)
    return data


def accepted(data):
    """The NetworkSpec of a drawn network; an example that validation refuses is discarded."""
    from hypothesis import assume
    from wgmesh_core.validate import InvalidNetwork, load_network
    try:
        return load_network(data)
    except InvalidNetwork:
        assume(False)


def assert_printable(text):
    """No control character (tab excepted) in any line of ``text``."""
    for line in text.splitlines():
        assert not any(ord(ch) < 32 and ch != "\t" or ord(ch) == 127 for ch in line), repr(line)
