"""git_pillar as the gate sees it: the remotes that serve the gate's repository, the pillar
environment they serve it in, and whether a fetch made them serve a revision (Salt's own
``GitPillar`` objects, on the master's options)."""
from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)


class GitPillar:
    """``opts``: the master's options; ``repo``: the gate's repository (git_pillar's remote);
    ``update``: Salt's ``git_pillar.update`` runner function ({remote: True, None or False})."""

    def __init__(self, opts, repo: str, update):
        self.opts, self.repo, self.update = opts, os.path.realpath(repo), update

    def remotes(self):
        """git_pillar's remotes whose URL is the gate's repository."""
        import salt.pillar.git_pillar
        import salt.utils.gitfs
        for entry in self.opts.get("ext_pillar") or []:
            if not (isinstance(entry, dict) and "git" in entry):
                continue
            pillar = salt.utils.gitfs.GitPillar(
                self.opts, entry["git"], per_remote_overrides=salt.pillar.git_pillar.PER_REMOTE_OVERRIDES,
                per_remote_only=salt.pillar.git_pillar.PER_REMOTE_ONLY, global_only=salt.pillar.git_pillar.GLOBAL_ONLY)
            for remote in pillar.remotes:
                url = remote.url[len("file://"):] if remote.url.startswith("file://") else remote.url
                if os.path.realpath(url) == self.repo:
                    yield remote

    def env(self) -> str:
        """The pillar environment git_pillar serves the repository in (GitPillar.checkout's rule:
        the remote's ``env``, else ``base`` for git_pillar_base, else the branch name), so the
        gate compiles top.sls exactly as git_pillar will."""
        for remote in self.remotes():
            if remote.env:
                return remote.env
            return "base" if remote.branch == remote.base else remote.branch
        return "base"

    def deploy_failure(self, revision: str, patience: float):
        """None when git_pillar now holds ``revision``, else why not. The master's maintenance
        loop fetches the same remotes and holds their update lock meanwhile (``update`` then
        says False): retried for ``patience`` seconds before the push counts as failed."""
        deadline = time.monotonic() + patience
        while True:
            failure = self.fetch_failure(revision)
            if not failure or time.monotonic() >= deadline:
                return failure
            log.warning("wgmesh: %s; retrying", failure)
            time.sleep(0.5)

    def fetch_failure(self, revision: str):
        """One ``update``: None when git_pillar now holds ``revision``, else why not. A remote
        whose fetch returned False (lock held, fetch error) has its fetched ref read back, since
        a None (nothing new) is fine when the maintenance loop fetched it first."""
        failed = [remote for remote, ok in self.update().items() if ok is False]
        served = {}
        try:
            for remote in self.remotes():
                served[remote.id] = remote.repo.commit(f"refs/remotes/origin/{remote.branch}").hexsha
        except Exception as error:  # pylint: disable=broad-except
            log.warning("wgmesh: cannot read git_pillar's fetched revision (%s); trusting git_pillar.update", error)
            served = {}
        stale = {remote: rev for remote, rev in served.items() if rev != revision}
        if failed and (stale or not served):
            return f"git_pillar.update failed for {', '.join(failed)} (update lock held, or fetch error: see the master log)"
        if stale:
            return f"git_pillar serves {', '.join(f'{r[:12]} ({remote})' for remote, r in stale.items())}, not {revision[:12]}"
        return None
