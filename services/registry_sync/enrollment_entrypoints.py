"""Course enrolments and change windows a school pushes, and its current
term. Mixed into ``RegistrySyncService``. Each push is a batch: every item
is checked on its own (a bad one is reported by index, the good ones are
kept), stored newest-``as_of``-wins, and announced to identity
(``enrollment_changed`` / ``change_window_changed``) only when it changed
something — so a push received twice, or an older one received late, has
the effect of one."""

from marshmallow import ValidationError

from services.common.contract.errors import NotFound
from services.common.plumbing.rpc import rpc
from services.common.rules.calendar import beijing_day
from services.registry_sync import domain
from services.registry_sync.schemas import (
    CurrentTermRequest,
    EnrollmentItem,
    PushRequest,
    WindowItem,
)

__all__ = ["EnrollmentEntrypoints"]

_PUSH = PushRequest()
_ENROLLMENT = EnrollmentItem()
_WINDOW = WindowItem()
_CURRENT_TERM = CurrentTermRequest()


def _checked(schema, items):
    """(good items with their index, refused: [{index, field, reason}])"""
    good, errors = [], []
    for index, item in enumerate(items):
        try:
            good.append((index, schema.load(item if isinstance(item, dict) else {})))
        except ValidationError as exc:
            for field, reasons in sorted(exc.messages.items()):
                reason = reasons[0] if isinstance(reasons, list) else str(reasons)
                errors.append({"index": index, "field": field, "reason": str(reason)})
    return good, errors


class EnrollmentEntrypoints:
    """Needs ``db`` and ``clock``."""

    def _require_school(self, school_code):
        if self.db.school(school_code) is None:
            raise NotFound("school_not_found")

    @rpc
    def push_enrollments(self, payload):
        request = _PUSH.load(payload)
        school_code = request["school_code"]
        self._require_school(school_code)
        now = self.clock()
        good, errors = _checked(_ENROLLMENT, request["items"])
        terms = self.db.school_terms(school_code, beijing_day(now))
        current = domain.current_terms(
            terms["explicit"], terms["covering"], terms["any_term"]
        )
        changed = published = 0
        for _, item in good:
            item = {**item, "school_code": school_code, "as_of": item["as_of"] or now}
            if not self.db.upsert_enrollment(item):
                continue
            changed += 1
            # Only the current term's enrolments drive identity's lock rules.
            if current is None or item["term"] in current:
                published += 1
                self.db.add_event(
                    "enrollment_changed",
                    {
                        **item,
                        "as_of": item["as_of"].isoformat(),
                        "exam_ends_at": item["exam_ends_at"].isoformat()
                        if item["exam_ends_at"]
                        else None,
                    },
                )
        self.db.audit_school_system(
            school_code, "school.enrollments_pushed", self.clock()
        )
        self.db.commit()
        return {
            "received": len(request["items"]),
            "changed": changed,
            "published": published,
            "refused": errors,
        }

    @rpc
    def push_change_windows(self, payload):
        request = _PUSH.load(payload)
        school_code = request["school_code"]
        self._require_school(school_code)
        now = self.clock()
        good, errors = _checked(_WINDOW, request["items"])
        changed = 0
        window_ids = []
        for _, item in good:
            fields = sorted(set(item.pop("fields_")))
            item = {
                **item,
                "fields": fields,
                "school_code": school_code,
                "as_of": item["as_of"] or now,
                "window_id": item["window_id"]
                or domain.window_id(fields, item["starts_at"], item["ends_at"]),
            }
            window_ids.append(item["window_id"])
            if not self.db.upsert_window(item):
                continue
            changed += 1
            self.db.add_event(
                "change_window_changed",
                {
                    "school_code": school_code,
                    "window_id": item["window_id"],
                    "fields": fields,
                    "starts_at": item["starts_at"].isoformat(),
                    "ends_at": item["ends_at"].isoformat(),
                    "cancelled": item["cancelled"],
                    "as_of": item["as_of"].isoformat(),
                },
            )
        self.db.audit_school_system(
            school_code, "school.change_windows_pushed", self.clock()
        )
        self.db.commit()
        return {
            "received": len(request["items"]),
            "changed": changed,
            "window_ids": window_ids,
            "refused": errors,
        }

    @rpc
    def set_current_term(self, payload):
        """The school's explicit current term (None: back to academicSessions)."""
        request = _CURRENT_TERM.load(payload)
        if not self.db.set_current_term(request["school_code"], request["term"]):
            raise NotFound("school_not_found")
        self.db.audit_school_system(
            request["school_code"], "school.current_term_set", self.clock()
        )
        self.db.commit()
        return {"school_code": request["school_code"], "current_term": request["term"]}
