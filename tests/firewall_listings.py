"""Live firewall listings as `iptables -S` and `firewall-cmd` print them on a host in sync with
a plan (optionally changed): shared by the core's firewall tests and the adapters' unit tests."""
from __future__ import annotations

from wgmesh_core import firewall
from wgmesh_core.firewall import FirewalldLive, rules


def listing(fw, table, extra_builtin=(), replace=None):
    """What `iptables [-t nat] -S` prints on a host in sync with ``fw`` (optionally changed)."""
    builtin = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}[table]
    lines = [f"-P {name} ACCEPT" for name in builtin]
    lines += [f"-N {name}" for t, name in firewall.ChainRules(rules(fw)).ours if t == table]
    chains = {name: list(extra_builtin) if name == "FORWARD" else [] for name in builtin}
    for r in rules(fw):
        if r.table == table:
            chains.setdefault(r.chain, []).append(r.args)
    for name, args in (replace or {}).items():
        chains[name] = args
    lines += [f"-A {name} {args}" for name, rule_args in chains.items() for args in rule_args]
    return "\n".join(lines) + "\n"


ZONE_INFO = """wgmesh (active)
  target: ACCEPT
  icmp-block-inversion: no
  interfaces: {interfaces}
  sources: {sources}
  services: 
  ports: 
"""
POLICY_INFO = """wgmesh-wireguard (active)
  priority: -100
  target: CONTINUE
  ingress-zones: ANY
  egress-zones: HOST
  services: 
  ports: {port}/udp
"""


def firewalld_live(fw, direct=None, interfaces="wg0", sources="", zone=True, policy=True, kernel=None):
    """What the listings print on a host whose firewalld holds ``direct`` (default: the plan)."""
    direct = [r.direct for r in rules(fw)] if direct is None else direct
    return FirewalldLive(
        zone=ZONE_INFO.format(interfaces=interfaces, sources=sources) if zone else None,
        policy=POLICY_INFO.format(port=fw.listen_port) if policy else None,
        chains="".join(f"ipv4 {t} {c}\n" for t, c in firewall.ChainRules(rules(fw)).ours),
        rules="\n".join(direct) + "\n",
        kernel_filter=kernel if kernel is not None else listing(fw, "filter"),
        kernel_nat=listing(fw, "nat"))


def set_listing(fw, members=None):
    """What `ipset save` prints on a host holding ``fw``'s sets (``members``: {name: [members]}
    instead of a set's planned ones), with another program's set among them."""
    lines = ["create docker-hosts hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1",
             "add docker-hosts 172.17.0.2"]
    for s in firewall.address_sets(fw):
        lines.append(f"create {s.name} hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x2")
        lines += [f"add {s.name} {m}" for m in (members or {}).get(s.name, s.members)]
    return "\n".join(lines) + "\n"
