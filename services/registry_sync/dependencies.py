"""Dependency providers of the registry_sync service."""

import base64
import logging
import os
import resource
import sys
from pathlib import Path

import eventlet
import psycopg2
from eventlet.green import subprocess
from nameko.extensions import DependencyProvider

from services.common.plumbing.crypto import Sealer, keyed_hash
from services.common.plumbing.poller import Poller
from services.registry_sync.store import CLAIM_IMPORT_SQL, REQUEUE_STALE_IMPORTS_SQL

__all__ = ["RegistryKeys", "ImportRunner"]

log = logging.getLogger(__name__)

# The repository root: the worker runs as `python -m …` from there.
ROOT = Path(__file__).resolve().parents[2]


class _Keys:
    def __init__(self, token_key, seal_key, lookup_key):
        self._token_key = token_key
        self._lookup_key = lookup_key
        # The same construction as identity's (AES-GCM bound to its purpose,
        # HMAC-SHA256 for lookups), with this service's own keys.
        self.id_sealer = Sealer(seal_key, b"registry_id_number")
        self.submission_sealer = Sealer(seal_key, b"registry_submission")

    def school_token_hash(self, token):
        return keyed_hash(self._token_key, "school_token", token)

    def id_hash(self, number):
        """Lookup hash of a normalised ID number (type-independent: a student
        gives the number, not always its type)."""
        return keyed_hash(self._lookup_key, "id_number", number)


class RegistryKeys(DependencyProvider):
    """``SCHOOL_TOKEN_KEY`` (HMAC), ``REGISTRY_ID_SEAL_KEY`` (AES-GCM) and
    ``REGISTRY_ID_LOOKUP_KEY`` (HMAC): base64, 32 bytes each."""

    def setup(self):
        keys = []
        for name in (
            "SCHOOL_TOKEN_KEY",
            "REGISTRY_ID_SEAL_KEY",
            "REGISTRY_ID_LOOKUP_KEY",
        ):
            key = base64.b64decode(self.container.config[name])
            if len(key) != 32:
                raise ValueError(f"{name} must be 32 bytes (base64)")
            keys.append(key)
        self.keys = _Keys(*keys)

    def get_dependency(self, worker_ctx):
        return self.keys


def _address_space_cap(mib):
    """A ``preexec_fn`` capping the child's address space (0: no cap)."""

    def cap():
        if mib > 0:
            limit = mib * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

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
        # the service; an import at the package size limit peaks at ~250 MiB.
        self.memory_limit_mib = int(config.get("IMPORT_MEMORY_LIMIT_MB", 448))
        self.env = {
            **os.environ,
            "REGISTRY_SYNC_DB_URI": self.dsn,
            "REGISTRY_ID_SEAL_KEY": config["REGISTRY_ID_SEAL_KEY"],
            "REGISTRY_ID_LOOKUP_KEY": config["REGISTRY_ID_LOOKUP_KEY"],
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
        conn = psycopg2.connect(self.dsn)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(REQUEUE_STALE_IMPORTS_SQL, {"stale": self.stale})
                for (import_id,) in cur.fetchall():
                    log.warning("import %s lost its worker; queued again", import_id)
                while len(self.running) < self.workers:
                    cur.execute(CLAIM_IMPORT_SQL)
                    claimed = cur.fetchone()
                    if claimed is None:
                        break
                    import_id = str(claimed[0])
                    self.running[import_id] = None
                    eventlet.spawn(self._run, import_id)
        finally:
            conn.close()

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
