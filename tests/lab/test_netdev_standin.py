"""The lab's stand-in for the WireGuard kernel module (lab/netdev_standin.py) mirrors a file into
networkd's view only once the file has stood still for a round: Salt's file.managed creates a file
0600 and sets its mode a moment later, and a networkd reload in between logged "Permission denied"
for a file wgmesh got right (a CI run of 8e3cd3d)."""
import os

from lab import netdev_standin


def test_a_file_is_mirrored_only_after_it_stood_still_for_a_round(tmp_path, monkeypatch):
    source, view = tmp_path / "etc", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    monkeypatch.setattr(netdev_standin, "SOURCE", source)
    last_seen: dict = {}
    network = source / "wg0.network"
    network.write_text("[Match]\nName=wg0\n")
    os.chmod(network, 0o600)                       # as file.managed first creates it
    assert netdev_standin.mirror(view, last_seen) == (False, True)     # being written: no link yet
    assert not (view / "wg0.network").exists()
    os.chmod(network, 0o644)                       # ... and a moment later gives it its mode
    assert netdev_standin.mirror(view, last_seen) == (False, True)
    assert not (view / "wg0.network").exists()
    assert netdev_standin.mirror(view, last_seen) == (True, False)     # copied; links may follow
    assert (view / "wg0.network").stat().st_mode & 0o777 == 0o644
    assert netdev_standin.mirror(view, last_seen) == (False, False)    # nothing new: no reload
    network.unlink()
    assert netdev_standin.mirror(view, last_seen) == (True, False)     # a removal goes at once
    assert not (view / "wg0.network").exists()


def test_a_new_wireguard_netdev_holds_the_links_back_while_it_is_written(tmp_path, monkeypatch):
    """networkd reads a .netdev and the .network beside it at one reload: the stand-in creates
    no link in a round where a file (the .netdev itself included) is still being written."""
    source, view = tmp_path / "etc", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    monkeypatch.setattr(netdev_standin, "SOURCE", source)
    last_seen: dict = {}
    assert netdev_standin.mirror(view, last_seen) == (False, False)
    (source / "wg0.netdev").write_text("[NetDev]\nName=wg0\nKind=wireguard\n")
    assert netdev_standin.mirror(view, last_seen) == (False, True)
    assert netdev_standin.mirror(view, last_seen) == (False, False)


def test_a_wireguard_netdev_is_left_to_the_stand_in(tmp_path, monkeypatch):
    source, view = tmp_path / "etc", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    monkeypatch.setattr(netdev_standin, "SOURCE", source)
    (source / "wg0.netdev").write_text("[NetDev]\nName=wg0\nKind=wireguard\n")
    (source / "br0.netdev").write_text("[NetDev]\nName=br0\nKind=bridge\n")
    last_seen: dict = {}
    netdev_standin.mirror(view, last_seen)
    netdev_standin.mirror(view, last_seen)
    assert sorted(p.name for p in view.iterdir()) == ["br0.netdev"]
