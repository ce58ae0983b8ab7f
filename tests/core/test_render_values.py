"""Templates refuse any value holding a newline or control character (defense in depth:
validation refuses them first, but a value from the mine or a future code path must never
add a line such as ``PostUp = ...`` to a file wg-quick runs)."""
from __future__ import annotations

import dataclasses

import pytest

from wgmesh_core.plan import Access, host_config
from wgmesh_core.render import (SOURCES, UnsafeValue, client_config, host_files, iptables_restore, render,
                                wg_setconf)

from . import article_texts as art
from .conftest import TODAY

BAD = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", BAD)
@pytest.mark.parametrize("backend", ["networkd", "wgquick"])
def test_a_mined_key_with_a_newline_is_never_rendered(spec, char, backend):
    keys = dict(art.PUBLIC_KEYS, z=art.PUBLIC_KEYS["z"] + char + "PostUp = touch /tmp/pwned")
    config = dataclasses.replace(host_config(spec, "a", TODAY, keys, art.PSKS), backend=backend)
    with pytest.raises(UnsafeValue) as info:
        host_files(config)
    message = str(info.value)
    assert "PublicKey" in message and "host a" in message and "nothing was written" in message
    assert repr(keys["z"])[:20] in message
    with pytest.raises(UnsafeValue):
        wg_setconf(config, art.PRIVATE_KEYS["a"])


def test_a_hub_endpoint_with_a_newline_is_never_rendered(spec):
    bad = spec.model_copy(update={"hub": spec.hub.model_copy(update={"endpoint": "1.2.3.4:51820\nPostUp = id"})})
    for render_it in (lambda: host_files(host_config(bad, "a", TODAY, art.PUBLIC_KEYS, art.PSKS)),
                      lambda: client_config(bad, "e", hub_public_key=art.PUBLIC_KEYS["z"])):
        with pytest.raises(UnsafeValue) as info:
            render_it()
        assert "Endpoint" in str(info.value) and "'1.2.3.4:51820\\nPostUp = id'" in str(info.value)


def test_firewall_values_are_checked(spec):
    config = host_config(spec, "c", TODAY, art.PUBLIC_KEYS, art.PSKS)
    bad = dataclasses.replace(config, firewall=dataclasses.replace(
        config.firewall, forward=(Access("10.70.0.4/32\n-A WGMESH-FORWARD -j ACCEPT", "192.168.200.0/24"),)))
    for render_it in (lambda: iptables_restore(bad), lambda: host_files(bad)):
        with pytest.raises(UnsafeValue) as info:
            render_it()
        assert "refusing a firewall rule holding a newline" in str(info.value)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_output_expression_of_every_template_is_checked(name):
    """Each ``{{ ... }}`` of each template, fed a value with a newline, is refused.

    Every variable any template reads resolves to an object whose every attribute and item is
    that value, so whichever expression renders first hits the check."""
    class Poison(str):
        def __getattr__(self, _):
            return self

        def __getitem__(self, _):
            return self

        def __iter__(self):
            return iter([self])

    poison = Poison("x\ny")
    context = {var: poison for var in ("c", "p", "fw", "chains", "spec", "dev", "routes", "name", "endpoint",
                                        "hub_public_key", "psk", "private_key", "private_key_file", "note_lines",
                                        "rules", "zone", "policy", "interface", "peers", "no_preshared_key")}
    if "{{" not in SOURCES[name]:
        assert render(name, **context) == SOURCES[name]
        return
    with pytest.raises(UnsafeValue) as info:
        render(name, **context)
    assert f"into {name}, line" in str(info.value)


def test_unchanged_output_for_good_values(spec):
    """The check passes good values through untouched: the article's files are what they were."""
    config = host_config(spec, "z", TODAY, art.PUBLIC_KEYS, art.PSKS)
    text = wg_setconf(config, art.PRIVATE_KEYS["z"])
    assert text.count("[Peer]") == 4 and f"PublicKey = {art.PUBLIC_KEYS['a']}\n" in text


def test_an_included_template_is_inlined_and_renders_as_jinja_includes_it(spec):
    """render.py writes each ``{% include %}`` into its template as text (Jinja's include made a
    context per peer: about 40 ms of a hub of 10,000): the files are the ones the include makes."""
    import jinja2
    from wgmesh_core import templates
    from wgmesh_core.render import SingleLineValues, single_line
    written = {name.lower(): getattr(templates, name) for name in dir(templates) if name.isupper()}
    including = sorted(name for name, source in written.items() if "{% include" in source)
    assert including == ["wg_quick", "wg_setconf"]
    assert not any("{% include" in source for source in SOURCES.values())
    jinja = jinja2.Environment(loader=jinja2.DictLoader(written), extensions=[SingleLineValues],
                               undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    jinja.filters["single_line"] = single_line
    config = host_config(spec, "z", TODAY, art.PUBLIC_KEYS, art.PSKS)
    for name, context in (("wg_quick", dict(c=config, private_key_file="/etc/wireguard/wg0.key")),
                          ("wg_setconf", dict(c=config, private_key=art.PRIVATE_KEYS["z"]))):
        text = render(name, **context)
        assert text.count("[Peer]") == 4 and "PresharedKey = " in text
        assert text == jinja.get_template(name).render(**context)
