"""The gate checks the intent tests (issue 13), live: a push that breaks one is refused, naming
it, and nothing is deployed or applied; a push that only adds tests plans no host.

Runs on the article lab after test_gitops.py and leaves it as it found it (no tests.yaml).
"""
from lab.article import D, jid_now, state_jobs_since
from lab.topology import REPO
from wgmesh_core.source import TESTS_FILE


def test_a_push_breaking_an_intent_test_is_refused_and_nothing_is_deployed(article):
    lab = article.lab
    event = article.push_and_wait("the article's intent tests", {TESTS_FILE: (REPO / "pillar" / TESTS_FILE).read_text()})
    assert event["tag"] == "wgmesh/applied", event
    assert event["data"]["affected"] == []                  # tests are served to no host
    deployed = lab.salt_run(["wgmesh.deployed_revision"])
    peers = set(lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout.split())
    developers = article.developers()
    kept = {name: dict(entry) for name, entry in developers.items()}
    developers["e"]["revoked"] = True
    jid = jid_now()
    event = article.push_and_wait("revoke e, tests left as they are", article.developers_file(developers))
    assert event["tag"] == "wgmesh/gate/refused", event
    assert ("tests[0] (the article's test: ping 192.168.200.244): e -> d expected reach via tunnel: "
            "developer e is revoked: the hub has no peer for it") in event["data"]["problems"]
    assert lab.salt_run(["wgmesh.deployed_revision"]) == deployed
    assert state_jobs_since(lab, jid) == set()
    assert set(lab.exec("z", ["wg", "show", "wg0", "peers"]).stdout.split()) == peers
    assert lab.ping("e", D)
    # back as it was: e kept, no tests
    article.git("rm", "-q", TESTS_FILE)
    event = article.push_and_wait("drop the intent tests again", article.developers_file(kept))
    assert event["tag"] == "wgmesh/applied" and event["data"]["affected"] == [], event
