"""The gate's hand-off on the hub: ``wgmesh.set_peers`` opens the peers sealed for this minion and
sets them, with the execution module and ``FakeHost`` (a MOCK of the interface) of test_module."""
from __future__ import annotations

import pytest
from salt.exceptions import CommandExecutionError

from .conftest import key
from .test_module import configure_loader_modules, host, keydir, mine, minion_id, module, network, pillar  # noqa: F401
from .test_module import in_sync, own_key


@pytest.fixture(scope="module")
def rsa_keys():
    import salt.crypt
    return salt.crypt.gen_keys(2048)


def sealed_for(minion, document, rsa_keys, tmp_path):
    """``document`` sealed on a master that accepted ``minion`` with ``rsa_keys``' public key."""
    from wgmesh_salt.sealed import seal
    accepted = tmp_path / "master-pki" / "minions"
    accepted.mkdir(parents=True, exist_ok=True)
    (accepted / minion).write_text(rsa_keys[1])
    return seal({"pki_dir": str(accepted.parent)}, minion, document)


@pytest.fixture
def minion_pki(configure_loader_modules, rsa_keys, tmp_path):
    """This minion's Salt key, where Salt keeps it (pki_dir/minion.pem)."""
    pki = tmp_path / "minion-pki"
    pki.mkdir()
    (pki / "minion.pem").write_text(rsa_keys[0])
    configure_loader_modules[module]["__opts__"]["pki_dir"] = str(pki)
    return pki


def test_set_peers_sets_the_sealed_peers_with_one_wg_set_and_one_wg_addconf(keydir, host, mine, minion_pki, rsa_keys,
                                                                           tmp_path):
    private, public = own_key(keydir)
    mine["z"] = public
    cfg = module._host_config()
    in_sync(host, cfg, private, public)
    g, psk, f = key(20), key(21), cfg.peers[-1].public_key
    document = {"minion": "z", "interface": "wg0", "removed": [f], "peers": [["g", g, ["10.70.0.9/32"], 25, psk]]}
    host.calls.clear()
    result = module.set_peers(sealed_for("z", document, rsa_keys, tmp_path))
    assert result["set"] == ["g"] and result["removed"] == [f] and list(result["timings"]) == ["set"]
    assert [call[:2] for call in host.calls] == [["ip", "link"], ["wg", "set"], ["wg", "addconf"]]   # no dump, plan, pillar
    assert host.calls[1] == ["wg", "set", "wg0", "peer", f, "remove"]
    assert host.stdin[2] == (f"[Peer]\nPublicKey = {g}\nPresharedKey = {psk}\nAllowedIPs = 10.70.0.9/32\n"
                             "PersistentKeepalive = 25\n\n")
    assert psk not in " ".join(" ".join(call) for call in host.calls)     # through the pipe only
    assert host.live.peers[g].preshared_key == psk and f not in host.live.peers


def test_set_peers_refuses_a_hand_off_not_sealed_for_it_or_changed(keydir, host, mine, minion_pki, rsa_keys, tmp_path):
    document = {"minion": "z", "interface": "wg0", "removed": [], "peers": [["g", key(20), ["10.70.0.9/32"], 25, None]]}
    sealed = sealed_for("z", document, rsa_keys, tmp_path)
    for bad in (sealed_for("a", document, rsa_keys, tmp_path), dict(sealed, data=sealed["data"][:-8] + "A" * 8),
                sealed_for("z", dict(document, interface="wg0 up"), rsa_keys, tmp_path), "just text"):
        with pytest.raises(CommandExecutionError, match="refusing the peer hand-off"):
            module.set_peers(bad)
    # base64 with characters outside its alphabet is refused, not read with them dropped
    for field in ("key", "data"):
        with pytest.raises(CommandExecutionError, match="refusing the peer hand-off: cannot open the sealed value"):
            module.set_peers(dict(sealed, **{field: sealed[field][:8] + "!\n" + sealed[field][8:]}))
    assert host.calls == []
    host.exists = False
    assert module.set_peers(sealed) == {"skipped": "no wg0 yet: the state run sets it up"}
    assert not host.ran("wg", "set") and not host.ran("wg", "addconf")
