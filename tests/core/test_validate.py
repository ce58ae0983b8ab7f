"""load_network refuses a bad pillar, naming the offending entry and saying why.

Each case starts from the example pillar and changes one thing.
"""
from __future__ import annotations

import datetime

import pytest

from wgmesh_core.validate import InvalidNetwork, Problem, endpoint_problem, load_network

from .conftest import problem_at, problems_of

KNOWN = {"z", "a", "c", "r1"}


def test_example_is_valid_with_known_minions(data):
    spec = load_network(data, known_minions=KNOWN)
    assert spec.network.prefixlen == 16


# --- addresses ---------------------------------------------------------------

def test_address_outside_vpn(data):
    data["developers"]["e"]["address"] = "10.71.0.4"
    problem = problem_at(problems_of(data), "developers.e.address")
    assert "outside the VPN" in problem.what and "10.70.0.0/16" in problem.what


@pytest.mark.parametrize("entry, address, taken_by", [
    (("gateways", "a"), "10.70.0.1", "hub"),              # gateway takes the hub's address
    (("developers", "e"), "10.70.0.1", "hub"),            # developer takes the hub's address
    (("developers", "e"), "10.70.0.3", "gateways.c"),     # developer takes a gateway's address
    (("gateways", "c"), "10.70.0.2", "gateways.a"),       # gateway takes a gateway's address
    (("developers", "f"), "10.70.0.4", "developers.e"),   # developer takes a developer's address
])
def test_address_taken_twice(data, entry, address, taken_by):
    kind, name = entry
    data[kind][name]["address"] = address
    problems = problems_of(data)
    problem = problem_at(problems, f"{kind}.{name}.address")
    assert "already taken" in problem.what and taken_by in problem.what
    # The first owner is not blamed.
    first = "hub.address" if taken_by == "hub" else f"{taken_by}.address"
    assert not [p for p in problems if p.where == first]


def test_hub_address_taken_by_later_entry_blames_the_later_one(data):
    data["hub"]["address"] = "10.70.0.5"   # f's address
    problem = problem_at(problems_of(data), "developers.f.address")
    assert "already taken by hub" in problem.what


@pytest.mark.parametrize("address, word", [("10.70.0.0", "network"), ("10.70.255.255", "broadcast")])
def test_network_or_broadcast_address(data, address, word):
    data["developers"]["f"]["address"] = address
    problem = problem_at(problems_of(data), "developers.f.address")
    assert f"{word} address" in problem.what


def test_hub_address_is_network_address(data):
    data["hub"]["address"] = "10.70.0.0"
    assert "network address" in problem_at(problems_of(data), "hub.address").what


def test_address_with_prefix_is_refused(data):
    data["developers"]["e"]["address"] = "10.70.0.4/16"
    problem = problem_at(problems_of(data), "developers.e.address")
    assert "without a prefix" in problem.what


# --- LANs ----------------------------------------------------------------------

def test_lan_overlapping_another_lan(data):
    data["gateways"]["c"]["lan"] = "192.168.200.0/23"     # holds a's 192.168.201.0/24
    problem = problem_at(problems_of(data), "gateways.c.lan")
    assert "overlaps the LAN 192.168.201.0/24 of gateway a" in problem.what


def test_identical_lans(data):
    data["gateways"]["c"]["lan"] = "192.168.201.0/24"
    data["gateways"]["c"]["lan_address"] = "192.168.201.248"
    problem = problem_at(problems_of(data), "gateways.c.lan")
    assert "overlaps" in problem.what and "gateway a" in problem.what


@pytest.mark.parametrize("lan, lan_address", [
    ("10.70.1.0/24", "10.70.1.1"),     # inside the VPN
    ("10.0.0.0/8", "10.1.0.1"),        # holds the VPN
])
def test_lan_overlapping_vpn(data, lan, lan_address):
    data["gateways"]["a"]["lan"] = lan
    data["gateways"]["a"]["lan_address"] = lan_address
    problem = problem_at(problems_of(data), "gateways.a.lan")
    assert "overlaps the VPN network 10.70.0.0/16" in problem.what


def test_lan_with_host_bits(data):
    data["gateways"]["a"]["lan"] = "192.168.201.7/24"
    problem = problem_at(problems_of(data), "gateways.a.lan")
    assert "host bits" in problem.what


def test_gateway_lan_address_outside_its_lan(data):
    data["gateways"]["a"]["lan_address"] = "192.168.200.247"
    problem = problem_at(problems_of(data), "gateways.a.lan_address")
    assert "outside the gateway's LAN 192.168.201.0/24" in problem.what


def test_gateway_lan_address_is_lan_broadcast(data):
    data["gateways"]["a"]["lan_address"] = "192.168.201.255"
    problem = problem_at(problems_of(data), "gateways.a.lan_address")
    assert "not a host address" in problem.what


# --- keys ------------------------------------------------------------------------

@pytest.mark.parametrize("key, why", [
    ("0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4H!=", "not valid base64"),   # bad base64 character
    ("0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA", "43 characters"),       # too short
    ("0VooFEp8ZdpZp3P7BPa2W3piw+eu/6cyUGpSUWZp4HA==", "45 characters"),     # too long
    ("A" * 44, "does not encode 32 bytes"),                                 # 33 bytes
])
def test_malformed_public_key(data, key, why):
    data["developers"]["e"]["public_key"] = key
    problem = problem_at(problems_of(data), "developers.e.public_key")
    assert why in problem.what


def test_duplicate_public_key(data):
    data["developers"]["f"]["public_key"] = data["developers"]["e"]["public_key"]
    problems = problems_of(data)
    problem = problem_at(problems, "developers.f.public_key")
    assert "same public key as developer e" in problem.what
    assert not [p for p in problems if p.where == "developers.e.public_key"]


def test_public_key_missing(data):
    del data["developers"]["e"]["public_key"]
    problem = problem_at(problems_of(data), "developers.e.public_key")
    assert "missing" in problem.what


# --- minion ids -------------------------------------------------------------------

@pytest.mark.parametrize("missing, where", [
    ("z", "hub.minion"),
    ("a", "gateways.a"),
    ("c", "gateways.c"),
    ("r1", "gateways.a.lan_router"),
])
def test_unknown_minion_id(data, missing, where):
    problems = problems_of(data, known_minions=KNOWN - {missing})
    problem = problem_at(problems, where)
    assert "unknown minion id" in problem.what and repr(missing) in problem.what
    assert len(problems) == 1


def test_minion_ids_not_checked_without_list(data):
    data["hub"]["minion"] = "nowhere"
    assert load_network(data).hub.minion == "nowhere"


def test_gateway_that_is_also_the_hub(data):
    data["hub"]["minion"] = "a"
    problem = problem_at(problems_of(data), "gateways.a")
    assert "already the hub.minion" in problem.what


# --- endpoint, ports, MTU ------------------------------------------------------------

@pytest.mark.parametrize("endpoint, why", [
    (":51820", "no host"),
    ("39.101.166.124:0", "not in 1-65535"),
    ("39.101.166.124:65536", "not in 1-65535"),
    ("39.101.166.124:abc", "not in 1-65535"),
    ("39.101.166.124:", "not in 1-65535"),
    ("bad_host!:51820", "neither an IPv4 address nor a host name"),
    ("bad host:51820", "contains whitespace"),
    ("vpn.example.com\n:51820", "contains whitespace"),            # '$' would have matched before the newline
    ("39.101.166.124\n:51820", "contains whitespace"),
    ("39.101.166.124:51820\nPostUp = touch /tmp/pwned", "contains whitespace"),
    ("vpn.example.com\x00:51820", "control"),
    ("39.101.166.124:\u0665\u0661\u0668\u0662\u0660", "non-ASCII"),   # Arabic-Indic digits pass str.isdigit
    ("vpn.ex\u0430mple.com:51820", "non-ASCII"),                    # Cyrillic a
    ("039.101.166.124:51820", "neither an IPv4 address nor a host name"),   # inet_aton: octal
    ("0.0.0.0:51820", "not a unicast address"),
    ("127.0.0.1:51820", "not a unicast address"),
    ("239.1.1.1:51820", "not a unicast address"),
    ("255.255.255.255:51820", "not a unicast address"),
    ("999.101.166.124:51820", "neither an IPv4 address nor a host name"),
    ("-vpn.example.com", "neither an IPv4 address nor a host name"),
])
def test_bad_endpoint(data, endpoint, why):
    data["hub"]["endpoint"] = endpoint
    problem = problem_at(problems_of(data), "hub.endpoint")
    assert why in problem.what and repr(endpoint) in problem.what


@pytest.mark.parametrize("endpoint, where, why", [
    ("10.70.0.9:51820", "hub.endpoint", "inside the VPN network 10.70.0.0/16"),
    ("10.70.0.1", "hub.endpoint", "inside the VPN network"),
    ("192.168.201.5:51820", "gateways.a.lan", "contains the hub endpoint 192.168.201.5"),
    ("192.168.200.1", "gateways.c.lan", "contains the hub endpoint 192.168.200.1"),
])
def test_endpoint_inside_the_vpn_or_a_lan(data, endpoint, where, why):
    data["hub"]["endpoint"] = endpoint
    assert why in problem_at(problems_of(data), where).what


@pytest.mark.parametrize("endpoint", ["39.101.166.124", "vpn.example.com", "vpn.example.com:443", "39.101.166.124:1"])
def test_good_endpoint(endpoint):
    assert endpoint_problem(endpoint) is None


@pytest.mark.parametrize("key, value", [
    ("listen_port", 0), ("listen_port", 65536), ("listen_port", "port"),
    ("mtu", 100), ("mtu", 100000), ("keepalive", -1),
])
def test_bad_top_level_number(data, key, value):
    data[key] = value
    problems = problems_of(data)
    assert [p.where for p in problems] == [key]


@pytest.mark.parametrize("path, value", [
    (("listen_port",), True), (("listen_port",), "51820"), (("listen_port",), 51820.0),
    (("mtu",), "1280"), (("preshared_keys",), "yes"), (("preshared_keys",), 1),
    (("developer_to_developer",), "false"), (("hub", "keepalive"), False),
    (("developers", "e", "revoked"), "true"), (("gateways", "a", "revoked"), 0),
    (("developers", "e", "expires"), 1780000000), (("developers", "e", "expires"), "2026-1-1"),
    (("developers", "e", "expires"), "2026-06-01T00:00"), (("developers", "e", "expires"), "2026-W22-1"),
    (("developers", "e", "expires"), "2026W221XX"), (("developers", "e", "expires"), "2026-13-01"),
    (("developers", "e", "expires"), "２０２６-06-01"), (("developers", "e", "expires"), datetime.datetime(2026, 6, 1, 12)),
    (("preshared_key_epoch",), 2**64),
])
def test_a_value_of_another_type_is_refused_not_converted(data, path, value):
    """The models are strict: a reviewer reading `listen_port: true` or `revoked: "true"` sees no
    port 1 and no revocation, so neither is served as one."""
    entry = data
    for part in path[:-1]:
        entry = entry[part]
    entry[path[-1]] = value
    assert [p.where for p in problems_of(data)] == [".".join(path)]


@pytest.mark.parametrize("value, told", [(True, "not true"), ("1280", "not the text '1280'"), (1280.0, "not 1280.0"),
                                         (None, "not null"), ([1280], "not a list")])
def test_a_value_of_another_type_is_told_as_written(data, value, told):
    data["mtu"] = value
    (problem,) = problems_of(data)
    assert problem.where == "mtu" and told in problem.what, problem.what


def test_a_number_too_long_to_show_is_told_so(data):
    data["preshared_keys"] = 10**5000          # past what Python turns into text
    (problem,) = problems_of(data)
    assert problem.where == "preshared_keys" and "not a number too long to show" in problem.what


@pytest.mark.parametrize("written", ["2026-06-01", datetime.date(2026, 6, 1), datetime.datetime(2026, 6, 1)])
def test_an_expiry_day_is_written_yyyy_mm_dd_or_is_a_date(data, written):
    """Salt's YAML renderer and JSON give text; a date object arrives as the datetime at midnight
    that Salt's pillar transport makes of it."""
    data["developers"]["e"]["expires"] = written
    assert load_network(data, today=datetime.date(2026, 1, 1)).developers["e"].expires == datetime.date(2026, 6, 1)


# --- unknown keys (typos) -------------------------------------------------------------

@pytest.mark.parametrize("path, typo", [
    ((), "listen_prot"),
    (("hub",), "endpont"),
    (("gateways", "a"), "lan_adress"),
    (("developers", "e"), "platfrom"),
])
def test_unknown_key(data, path, typo):
    entry = data
    for part in path:
        entry = entry[part]
    entry[typo] = "x"
    where = ".".join(path + (typo,))
    problem = problem_at(problems_of(data), where)
    assert "unknown key" in problem.what


def test_typo_of_required_key_reports_both(data):
    data["developers"]["e"]["public_kye"] = data["developers"]["e"].pop("public_key")
    problems = problems_of(data)
    assert "unknown key" in problem_at(problems, "developers.e.public_kye").what
    assert "missing" in problem_at(problems, "developers.e.public_key").what


@pytest.mark.parametrize("key, value", [("lan_mode", "nat"), ("firewall", "nftables"), ("lan_interface", "eth 2")])
def test_bad_gateway_choice(data, key, value):
    data["gateways"]["c"][key] = value
    problem_at(problems_of(data), f"gateways.c.{key}")


def test_bad_platform_and_expiry(data):
    data["developers"]["e"]["platform"] = "beos"
    data["developers"]["f"]["expires"] = "next week"
    problems = problems_of(data)
    problem_at(problems, "developers.e.platform")
    problem_at(problems, "developers.f.expires")


def test_bad_lan_access_shape(data):
    data["developers"]["e"]["lan_access"] = "some"
    problems = problems_of(data)
    assert {p.where for p in problems} == {"developers.e.lan_access"}
    assert any("'all' or 'none'" in p.what for p in problems)


# --- lan_access references --------------------------------------------------------------

def test_lan_access_names_unknown_gateway(data):
    data["developers"]["e"]["lan_access"] = ["a", "b"]
    problems = problems_of(data)
    problem = problem_at(problems, "developers.e.lan_access")
    assert "'b'" in problem.what and "not a gateway" in problem.what
    assert len(problems) == 1


def test_lan_access_names_revoked_gateway(data):
    data["gateways"]["a"]["revoked"] = True   # c still has lan_access [a]
    problems = problems_of(data)
    problem = problem_at(problems, "gateways.c.lan_access")
    assert "gateway a" in problem.what and "revoked" in problem.what


def test_gateway_naming_hub_in_lan_access(data):
    data["gateways"]["c"]["lan_access"] = ["z"]
    problem = problem_at(problems_of(data), "gateways.c.lan_access")
    assert "not a gateway" in problem.what


# --- several problems at once -------------------------------------------------------------

def test_all_relation_problems_are_collected(data):
    data["developers"]["e"]["address"] = "10.71.0.4"                 # outside
    data["developers"]["f"]["public_key"] = "short"                  # malformed
    data["gateways"]["a"]["lan_address"] = "192.168.200.247"         # outside its LAN
    data["hub"]["endpoint"] = ":51820"                               # no host
    data["gateways"]["c"]["lan_access"] = ["b"]                      # unknown gateway
    problems = problems_of(data, known_minions={"a", "c", "r1"})      # hub z unknown
    assert {p.where for p in problems} == {
        "developers.e.address", "developers.f.public_key", "gateways.a.lan_address",
        "hub.endpoint", "gateways.c.lan_access", "hub.minion"}


def test_all_shape_problems_are_collected(data):
    data["listen_port"] = 0
    data["hub"]["endpont"] = "x"
    data["gateways"]["a"]["lan"] = "192.168.201.0"
    data["developers"]["f"]["address"] = "not-an-ip"
    problems = problems_of(data)
    assert {p.where for p in problems} == {
        "listen_port", "hub.endpont", "gateways.a.lan", "developers.f.address"}


def test_invalid_network_message_lists_every_problem(data):
    data["developers"]["e"]["address"] = "10.71.0.4"
    data["developers"]["f"]["address"] = "10.71.0.5"
    with pytest.raises(InvalidNetwork) as info:
        load_network(data)
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems]
    assert len(info.value.problems) == 2
    assert str(Problem("hub.address", "why")) == "hub.address: why"


@pytest.mark.parametrize("value", [None, [], "wgmesh"])
def test_not_a_mapping(value):
    problems = problems_of(value)
    assert problems[0].where == "wgmesh" and "mapping" in problems[0].what


def test_required_sections_missing():
    problems = problems_of({"gateways": {}})
    assert {"network", "hub"} <= {p.where for p in problems}


def test_developer_named_like_a_minion(data):
    data["developers"]["c"] = data["developers"].pop("f")   # developer "c" besides gateway c
    problem = problem_at(problems_of(data), "developers.c")
    assert "gateways.c" in problem.what and "distinct names" in problem.what


def test_expiry_dates_need_the_schedule(data):
    import datetime
    from wgmesh_core.validate import InvalidNetwork, load_network
    data["schedule"] = {"drift_minutes": 0}
    load_network(data)                                   # no expiry anywhere: fine
    data["developers"]["e"]["expires"] = datetime.date.today() + datetime.timedelta(days=30)
    try:
        load_network(data)
    except InvalidNetwork as error:
        assert [p.where for p in error.problems] == ["schedule.drift_minutes"]
        assert "developers e have one" in error.problems[0].what
    else:
        raise AssertionError("accepted expiry dates with the schedule off")


# --- values that reach files and command lines --------------------------------------

@pytest.mark.parametrize("path", [("interface",), ("gateways", "a", "lan_interface")])
@pytest.mark.parametrize("name", ["-x", "--help", "wg0\n", "wg 0", "a" * 16, ""])
def test_interface_names_are_never_options_or_multi_line(data, path, name):
    *parents, key = path
    target = data
    for part in parents:
        target = target[part]
    target[key] = name
    assert problem_at(problems_of(data), ".".join(path))


@pytest.mark.parametrize("lan, lan_address, why", [
    ("192.168.201.0/31", "192.168.201.0", "no room for hosts"),
    ("192.168.201.247/32", "192.168.201.247", "no room for hosts"),
    ("8.8.8.0/24", "8.8.8.1", "not a private range"),
    ("100.128.0.0/24", "100.128.0.1", "not a private range"),        # just outside 100.64/10
    ("172.32.0.0/24", "172.32.0.1", "not a private range"),          # just outside 172.16/12
])
def test_lan_must_be_a_private_range_with_room_for_hosts(data, lan, lan_address, why):
    data["gateways"]["a"].update(lan=lan, lan_address=lan_address)
    assert why in problem_at(problems_of(data), "gateways.a.lan").what


@pytest.mark.parametrize("lan, lan_address", [("100.64.3.0/24", "100.64.3.1"), ("172.31.0.0/24", "172.31.0.1"),
                                              ("10.1.0.0/30", "10.1.0.1")])
def test_private_lans_are_accepted(data, lan, lan_address):
    data["gateways"]["a"].update(lan=lan, lan_address=lan_address)
    load_network(data)


def test_public_lan_needs_allow_public_lan(data):
    data["gateways"]["a"].update(lan="198.51.100.0/24", lan_address="198.51.100.1")
    assert "allow_public_lan: true" in problem_at(problems_of(data), "gateways.a.lan").what
    data["allow_public_lan"] = True
    assert load_network(data).allow_public_lan is True


def test_defaults_of_the_new_limits(spec):
    assert spec.allow_public_lan is False and spec.max_access_days == 366


@pytest.mark.parametrize("days, accepted", [(366, True), (367, False), (-400, True)])
def test_expires_at_most_max_access_days_ahead(data, days, accepted):
    import datetime
    today = datetime.date(2025, 6, 15)
    data["developers"]["e"]["expires"] = today + datetime.timedelta(days=days)
    if accepted:
        load_network(data, today=today)
    else:
        problem = problem_at(problems_of(data, today=today), "developers.e.expires")
        assert "367 days ahead" in problem.what and "max_access_days (366)" in problem.what


def test_max_access_days_is_configurable(data):
    import datetime
    today = datetime.date(2025, 6, 15)
    data["max_access_days"] = 30
    data["developers"]["e"]["expires"] = today + datetime.timedelta(days=31)
    assert "max_access_days (30)" in problem_at(problems_of(data, today=today), "developers.e.expires").what



# --- address parsing (found by the mutation run, bench/mutation-survivors.md) ----------------

@pytest.mark.parametrize("value, what", [
    ("::1", "'::1' is not an IPv4 address"),
    ("300.1.1.1", "'300.1.1.1' is not an IPv4 address"),
    # the strict dotted quad only: leading zeros (octal to some parsers), short and padded forms
    ("010.70.0.1", "'010.70.0.1' is not an IPv4 address"),
    ("10.70.1", "'10.70.1' is not an IPv4 address"),
    ("10.70.0.1 ", "'10.70.0.1 ' is not an IPv4 address"),
    ("10.70.0.1\x00", "'10.70.0.1\\x00' is not an IPv4 address"),
    ("0x0a.70.0.1", "'0x0a.70.0.1' is not an IPv4 address"),
    ("10.70.0.\u0661", "'10.70.0.\u0661' is not an IPv4 address"),
])
def test_an_address_that_is_not_ipv4_is_refused_by_name(data, value, what):
    data["hub"]["address"] = value
    assert problem_at(problems_of(data), "hub.address").what == what


@pytest.mark.parametrize("value, what", [
    ("fd00::/64", "'fd00::/64' is not an IPv4 network in CIDR form"),
    ("10.70.0.0/33", "'10.70.0.0/33' is not an IPv4 network in CIDR form"),
    ("10.70.0.0", "'10.70.0.0' is not an IPv4 network in CIDR form (like 192.168.200.0/24)"),
])
def test_a_network_that_is_not_ipv4_cidr_is_refused_by_name(data, value, what):
    data["network"] = value
    assert problem_at(problems_of(data), "network").what == what


@pytest.mark.parametrize("contact", ["alice\n\n### Intent tests", "a\x1b[2J", "nul\x00", "a\u2028b", "tab\there"])
def test_a_contact_is_one_line_of_printable_text(data, contact):
    """A plan's manual actions show it: a line break there would write lines of its own."""
    data["developers"]["e"]["contact"] = contact
    problem = problem_at(problems_of(data), "developers.e.contact")
    assert problem.what == f"{contact!r} holds a line break or control character: write one line of text"


def test_a_contact_may_be_any_printable_line(data):
    data["developers"]["e"]["contact"] = "Émile Zola <emile@example.com> (Slack: @emile) ✅"
    assert load_network(data).developers["e"].contact.startswith("Émile")


def test_a_problem_naming_a_file_name_that_is_not_utf8_can_be_written_anywhere():
    """Python reads such a name with surrogate escapes, which a strict stdout (a pipe) cannot
    encode: `wgmesh plan` stopped with exit 2 instead of the refusal."""
    told = str(Problem("wgmesh/bad\udcff.sls:4", "not valid YAML"))
    assert told == "wgmesh/bad\\udcff.sls:4: not valid YAML"
    told.encode("utf-8")
