"""Adopting a host set up by hand from the article: its key is kept (salt-call --local, one
namespace per host, wireguard-go for the tunnel; the networkd case on the real systemd-networkd,
with the lab's stand-in for the missing WireGuard kernel module)."""
import json

import yaml

from wgmesh_core import public_key
from .conftest import state_results
from .test_local_apply import keypair, network_pillar, pillar_for  # noqa: F401  (fixture)


def hand_built_wg_quick(pillar, private):
    """The article's hub, by hand: wg-quick with the private key inline and gateway a as a peer."""
    return (f"[Interface]\nAddress = 10.70.0.1/16\nListenPort = 51820\nMTU = 1280\nPrivateKey = {private}\n\n"
            f"[Peer]\nPublicKey = {pillar['wgmesh_host_keys']['a']}\nPresharedKey = {pillar['wgmesh_psk']['a']}\n"
            "AllowedIPs = 10.70.0.2/32, 192.168.201.0/24\nPersistentKeepalive = 15\n")


def test_hand_built_wg_quick_hub_keeps_its_key_and_test_mode_never_raises(local_host, network_pillar):
    pillar = pillar_for(network_pillar, backend="wgquick", firewall="iptables")
    private, public = keypair()
    host = local_host("z", pillar)
    host.path("/etc/wireguard/wg0.conf").write_text(hand_built_wg_quick(pillar, private))
    host.path("/etc/wireguard/wg0.conf").chmod(0o600)
    networkd = dict(pillar, wgmesh=dict(pillar["wgmesh"], backend="networkd"))
    switched = host.dir / "networkd.sls"
    switched.write_text(yaml.safe_dump(networkd))
    out = host.run("wg-quick up wg0", host.salt_call("saltutil.sync_all"),
                   host.salt_call("state.apply wgmesh test=True"), "ls /etc/wireguard",
                   host.salt_call("state.apply wgmesh"),
                   "wg show wg0 private-key; cat /etc/wireguard/wg0.key; grep -c PrivateKey /etc/wireguard/wg0.conf || true",
                   # the backend switch: networkd's key file does not exist yet; the key moves over
                   f"cp {switched} {host.dir / 'pillar' / 'net.sls'}",
                   host.salt_call("state.apply wgmesh test=True"), host.salt_call("state.apply wgmesh"),
                   "wg show wg0 private-key; cat /etc/systemd/network/wg0.key",
                   host.salt_call("state.apply wgmesh"), "ls /etc/wireguard")
    dry = state_results(out[2])
    assert all(r["result"] in (None, True) for r in dry.values()), dry
    assert dry["wgmesh-private-key"]["changes"]["adopted_from"] == "the live interface wg0"
    assert "interface" not in dry["wgmesh-tunnel"]["changes"].get("peers", {})
    assert "wg0.key" not in out[3]                           # test=True wrote nothing
    first = state_results(out[4])
    assert all(r["result"] is True for r in first.values()), {k: r["comment"] for k, r in first.items()}
    assert "private_key" not in json.dumps(first["wgmesh-tunnel"]["changes"])   # never re-keyed
    assert out[5].split() == [private, private, "0"]     # live key, wgmesh's key file, no inline key
    assert public_key(private) == public
    switched_dry, switched_apply = state_results(out[7]), state_results(out[8])
    assert all(r["result"] in (None, True) for r in switched_dry.values()), switched_dry
    assert switched_apply["wgmesh-private-key"]["changes"]["adopted_from"] == "the live interface wg0"
    assert all(r["result"] is True for r in switched_apply.values())
    assert out[9].split() == [private, private]
    # wg-quick's config and key are this host's leftovers: removed, so boot brings wg0 up once
    assert sorted(switched_apply["wgmesh-tunnel"]["changes"]["removed_files"]) == [
        "/etc/wireguard/wg0.conf", "/etc/wireguard/wg0.key"]
    again = state_results(out[10])
    assert all(r["result"] is True and not r["changes"] for r in again.values()), again
    assert out[11].split() == []


def test_article_netdev_with_inline_key_is_adopted_before_the_link_exists(local_host, network_pillar):
    pillar = pillar_for(network_pillar, backend="networkd", firewall="iptables")
    private, public = keypair()
    host = local_host("z", pillar)
    host.path("/etc/systemd/network/wg0.netdev").write_text(
        f"[NetDev]\nName=wg0\nKind=wireguard\nMTUBytes=1280\n\n[WireGuard]\nListenPort=51820\nPrivateKey={private}\n")
    # networkd starts after the dry run: until then no link exists (as before a kernel module loads)
    out = host.run(host.salt_call("saltutil.sync_all"), host.salt_call("state.apply wgmesh test=True"),
                   host.start_networkd(), host.salt_call("state.apply wgmesh"), "wg show wg0 public-key")
    out = out[:2] + out[3:]
    assert state_results(out[1])["wgmesh-private-key"]["changes"]["adopted_from"] == "/etc/systemd/network/wg0.netdev"
    assert all(r["result"] is True for r in state_results(out[2]).values())
    assert out[3].strip() == public
    assert "PrivateKeyFile=/etc/systemd/network/wg0.key" in host.path("/etc/systemd/network/wg0.netdev").read_text()
