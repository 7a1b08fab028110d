"""OneRoster import entrypoints of registry_sync: a school's system hands
in a zip, reads back progress and per-row errors; when an import lands,
the verifications it may settle are re-checked. Mixed into
``RegistrySyncService``; the work itself is ``import_worker.py`` in a
process of its own, started by ``ImportRunner``."""

import base64
import binascii
import logging
import uuid

from services.common.contract.errors import InvalidRequest, NotFound
from services.common.plumbing.handlers import event_handler
from services.common.plumbing.rpc import rpc
from services.registry_sync import domain
from services.registry_sync.schemas import (
    ImportState,
    ImportStatusRequest,
    StartImportRequest,
)

__all__ = ["ImportEntrypoints"]

log = logging.getLogger(__name__)

_START = StartImportRequest()
_STATUS = ImportStatusRequest()
_STATE = ImportState()


class ImportEntrypoints:
    """Needs ``db``, ``clock``, ``imports`` (ImportRunner) and ``_check``."""

    @rpc
    def start_import(self, payload):
        request = _START.load(payload)
        try:
            package = base64.b64decode(request["package_b64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("package_not_zip") from None
        import_id = uuid.uuid4()
        school_code = request["school_code"]
        self.db.insert_import(import_id, school_code, package, self.clock())
        self.db.audit(
            f"school:{school_code}",
            school_code,
            "oneroster.import_queued",
            self.clock(),
            import_id=import_id,
        )
        self.db.commit()
        self.imports.wake()
        return {"import_id": str(import_id), "status": "queued"}

    @rpc
    def import_status(self, payload):
        request = _STATUS.load(payload)
        row = self.db.import_of(request["school_code"], request["import_id"])
        if row is None:  # another school's import is as unknown as none
            raise NotFound("import_not_found")
        errors, total = self.db.import_errors(
            request["import_id"], request["error_limit"]
        )
        return _STATE.dump(
            {
                **row,
                "import_id": str(row["id"]),
                "warnings": row["warnings"] or [],
                "errors": errors,
                "errors_total": total,
            }
        )

    @event_handler("registry_sync", "roster_imported")
    def on_roster_imported(self, payload, envelope):
        """Pending and failed verifications of the school may pass now;
        passed ones whose record the import changed follow it."""
        now = self.clock()
        rows = self.db.verifications_after_import(
            payload["school_code"], payload["since"], domain.NOT_RECHECKED
        )
        for row in rows:
            self.verifier.check(row, now)
        log.info(
            "import %s: %d verification(s) re-checked", payload["import_id"], len(rows)
        )
