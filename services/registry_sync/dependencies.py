"""Dependency providers of the registry_sync service."""

import logging
import os
import sys
from pathlib import Path

import eventlet
from eventlet.green import subprocess
from nameko.extensions import DependencyProvider

from services.common.plumbing.limits import cap_address_space
from services.common.plumbing.poller import Poller
from services.common.plumbing.providers import sibling
from services.registry_sync import domain
from services.registry_sync.import_store import ImportStore
from services.registry_sync.keys import keys_from

__all__ = ["Verifier", "RegistryKeys", "ImportRunner", "KnownSchools"]

log = logging.getLogger(__name__)

# The repository root: the worker runs as `python -m …` from there.
ROOT = Path(__file__).resolve().parents[2]


class RegistryKeys(DependencyProvider):
    """``SCHOOL_TOKEN_KEY`` (HMAC), ``REGISTRY_ID_SEAL_KEY`` (AES-GCM) and
    ``REGISTRY_ID_LOOKUP_KEY`` (HMAC): base64, 32 bytes each."""

    def setup(self):
        self.keys = keys_from(self.container.config)

    def get_dependency(self, worker_ctx):
        return self.keys


class KnownSchools(DependencyProvider):
    """``self.known_schools``: which school an API token (by its keyed hash)
    named when this process last checked it, and how that school's SCIM
    attributes were read (``scim_sources``). A hint, never the authority: it
    lets a SCIM create parse its body before its one statement, and that
    statement checks the token and the sources again (``store``'s
    ``CREATE_STUDENT_AS_SCHOOL_SQL``), so a rotated token or changed sources
    cost one more round trip, never a wrong answer. Holds no token and no
    personal data."""

    # Schools whose systems call this process; beyond it the oldest is
    # dropped (it is learnt again on its next call).
    capacity = 4096

    def setup(self):
        self.by_token_hash = {}

    def get_dependency(self, worker_ctx):
        return self

    def get(self, token_hash):
        """``{"code", "scim_sources"}`` or None."""
        return self.by_token_hash.get(token_hash)

    def remember(self, token_hash, school):
        if len(self.by_token_hash) >= self.capacity:
            self.by_token_hash.pop(next(iter(self.by_token_hash)))
        self.by_token_hash[token_hash] = {
            "code": school["code"],
            "scim_sources": school["scim_sources"],
        }

    def forget(self, token_hash):
        self.by_token_hash.pop(token_hash, None)


def _address_space_cap(mib):
    """A ``preexec_fn`` capping the child's address space (0: no cap)."""

    def cap():
        if mib > 0:
            cap_address_space(mib)

    return cap


class ImportRunner(DependencyProvider):
    """Runs queued OneRoster imports, each in a worker process
    (``services.registry_sync.import_worker``): at most ``IMPORT_WORKERS``
    at a time per service instance, one at a time per school (the claim
    skips schools with a running import). Imports whose worker stopped
    beating for ``IMPORT_STALE_SECONDS`` are queued again."""

    def setup(self):
        config = self.container.config
        self.dsn = config["DB_URI"]
        self.workers = int(config.get("IMPORT_WORKERS", 2))
        self.stale = float(config.get("IMPORT_STALE_SECONDS", 120))
        # The worker's address space is capped: an import that would outgrow
        # the pod fails on its own (MemoryError -> import_error) instead of
        # the kernel killing the service with it. 448 MiB: a 512 Mi pod less
        # the service; an import at the package size limit peaks at ~175 MiB
        # (bench.import_memory, 1.1 and 1.2 packages alike).
        self.memory_limit_mib = int(config.get("IMPORT_MEMORY_LIMIT_MB", 448))
        self.env = {
            **os.environ,
            "REGISTRY_SYNC_DB_URI": self.dsn,
            "REGISTRY_ID_SEAL_KEY": config["REGISTRY_ID_SEAL_KEY"],
            "REGISTRY_ID_LOOKUP_KEY": config["REGISTRY_ID_LOOKUP_KEY"],
            "IMPORT_POOL_WORKERS": str(config.get("IMPORT_POOL_WORKERS", 1)),
            # One malloc arena: the worker's few threads (the pool's queue
            # feeder and manager) allocate little, and each further arena
            # reserves 64 MiB of the capped address space.
            "MALLOC_ARENA_MAX": "1",
        }
        self.running = {}
        self.poller = Poller(
            f"{self.container.service_name} import runner",
            self._tick,
            float(config.get("IMPORT_POLL_SECONDS", 1.0)),
        )

    def start(self):
        self.poller.start()

    def stop(self):
        self.poller.stop()
        for process in list(self.running.values()):
            process.terminate()  # its transaction rolls back; requeued later

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        return self

    def wake(self):
        self.poller.wake()

    def _tick(self):
        store = ImportStore.for_runner(self.dsn)
        try:
            for import_id in store.requeue_stale(self.stale):
                log.warning("import %s lost its worker; queued again", import_id)
            while len(self.running) < self.workers:
                import_id = store.claim_next()
                if import_id is None:
                    break
                self.running[import_id] = None
                eventlet.spawn(self._run, import_id)
        finally:
            store.close()

    def _run(self, import_id):
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.registry_sync.import_worker",
                    import_id,
                ],
                env=self.env,
                cwd=ROOT,
                preexec_fn=_address_space_cap(self.memory_limit_mib),
            )
            self.running[import_id] = process
            code = process.wait()
            if code:
                log.error("import worker for %s exited with %s", import_id, code)
        finally:
            self.running.pop(import_id, None)
            self.poller.wake()


class _Verifier:
    def __init__(self, store_of, keys):
        self._store = store_of
        self._keys = keys

    def check(self, row, now, announce=False):
        """Match ``row`` (locked) against the registry as it is now, store the
        outcome, and tell identity when it moved (or ``announce``)."""
        db = self._store()
        school_code = row["school_code"]
        if db.school(school_code) is None:
            outcome = domain.Outcome("failed", "school_not_onboarded")
        elif not db.school_has_roster(school_code):
            outcome = domain.Outcome("pending", "school_not_synced")
        else:
            record = db.record_by_number(school_code, row["student_number"])
            if row["linked_by"]:
                outcome = domain.linked_outcome(record)
            else:
                submission = self._keys.submission_sealer.open(row["submission"])
                claimed = record is not None and db.claimed_by_other(
                    school_code, row["student_number"], row["account_id"]
                )
                outcome = domain.match_submission(
                    submission, record, claimed, self._keys.id_hash
                )
        before = (row["status"], row["code"], list(row["mismatches"] or []))
        saved = db.set_outcome(row["account_id"], outcome, now)
        after = (saved["status"], saved["code"], list(saved["mismatches"]))
        if row["correction_note"] and before != after:
            # The school acted on the student's correction request: the
            # outcome goes back to the student's inbox.
            db.add_event(
                "correction_answered",
                {
                    "account_id": str(saved["account_id"]),
                    "school_code": saved["school_code"],
                    "status": saved["status"],
                    "code": saved["code"],
                    "as_of": now.isoformat(),
                },
            )
        if announce or before != after or row["class_name"] != saved["class_name"]:
            db.add_event(
                "registry_verification_changed",
                {
                    "account_id": str(saved["account_id"]),
                    "status": saved["status"],
                    "code": saved["code"],
                    "school_code": saved["school_code"],
                    "student_number": saved["student_number"],
                    "class_name": saved["class_name"],
                    "as_of": now.isoformat(),
                },
            )
            log.info(
                "registry verification of %s: %s (%s)",
                saved["account_id"],
                saved["status"],
                saved["code"],
            )
        return saved

    def roster_changed(self, school_code, student_numbers, now):
        """Registry records of these students changed in this transaction:
        re-check every verification that names them (pending and failed ones
        may pass now, passed ones follow their record)."""
        db = self._store()
        numbers = sorted(set(student_numbers))
        if not numbers:
            return 0
        rows = db.verifications_of_numbers(school_code, numbers, domain.NOT_RECHECKED)
        for row in rows:
            self.check(row, now)
        return len(rows)


class Verifier(DependencyProvider):
    """``self.verifier``: the one place a registry verification's outcome
    is decided (``check``) and re-decided when roster records change
    (``roster_changed``) — by a student's submission, an admin, a SCIM
    write, a pushed enrolment or an import — on the worker's store."""

    def setup(self):
        self.database = sibling(self, "db")
        self.keys = sibling(self, "keys")

    def get_dependency(self, worker_ctx):
        stores = self.database.stores
        return _Verifier(lambda: stores[worker_ctx], self.keys.keys)
