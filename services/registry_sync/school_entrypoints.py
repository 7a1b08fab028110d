"""Schools and their API tokens: onboarding (the token is shown once),
rotation, the check every school-system request goes through, and the
school's record for its admins. Mixed into ``RegistrySyncService``; needs
``db``, ``clock`` and ``keys``."""

import logging

from services.common.contract.errors import NotFound, Unauthenticated
from services.common.plumbing.rpc import rpc
from services.registry_sync import domain, scim
from services.registry_sync.schemas import (
    AuthenticateSchoolRequest,
    OnboardSchoolRequest,
    RotateTokenRequest,
    SchoolInfo,
    SchoolToken,
    ScimSourcesAnswer,
    SetScimSourcesRequest,
    ViewSchoolRequest,
)

__all__ = ["SchoolEntrypoints"]

log = logging.getLogger(__name__)

_ONBOARD = OnboardSchoolRequest()
_ROTATE = RotateTokenRequest()
_VIEW = ViewSchoolRequest()
_AUTHENTICATE_SCHOOL = AuthenticateSchoolRequest()
_SCHOOL_TOKEN = SchoolToken()
_SCHOOL_INFO = SchoolInfo()
_SET_SOURCES = SetScimSourcesRequest()
_SOURCES_ANSWER = ScimSourcesAnswer()


def _sources_answer(row):
    return _SOURCES_ANSWER.dump(
        {
            "code": row["code"],
            "sources": scim.checked_sources(row["scim_sources"]),
            "defaults": row["scim_sources"] is None,
        }
    )


class SchoolEntrypoints:
    @rpc
    def onboard_school(self, payload):
        """A new school and its API token — the only time the token is shown."""
        request = _ONBOARD.load(payload)
        now = self.clock()
        token = domain.new_school_token()
        self.db.insert_school(
            request["code"],
            request["name"],
            request["region"],
            self.keys.school_token_hash(token),
            now,
        )
        self.db.audit(
            request["actor"],
            request["code"],
            "school_onboarded",
            now,
            school_code=request["code"],
        )
        self.db.commit()
        log.info("school %s onboarded by %s", request["code"], request["actor"])
        return _SCHOOL_TOKEN.dump({"code": request["code"], "api_token": token})

    @rpc
    def rotate_school_token(self, payload):
        """A new token for the school; the old one stops working at once."""
        request = _ROTATE.load(payload)
        now = self.clock()
        token = domain.new_school_token()
        if not self.db.rotate_token(
            request["code"], self.keys.school_token_hash(token), now
        ):
            raise NotFound("school_not_found")
        self.db.audit(
            request["actor"],
            request["code"],
            "school_token_rotated",
            now,
            school_code=request["code"],
        )
        self.db.commit()
        return _SCHOOL_TOKEN.dump({"code": request["code"], "api_token": token})

    @rpc
    def authenticate_school(self, payload):
        """The school a system's token belongs to, audited as ``action``
        (every school-system request is)."""
        request = _AUTHENTICATE_SCHOOL.load(payload)
        school = self.db.school_call(
            self.keys.school_token_hash(request["token"]),
            request["action"],
            self.clock(),
        )
        if school is None:
            raise Unauthenticated("invalid_school_token")
        return {"school_code": school["code"], "name": school["name"]}

    @rpc
    def view_school(self, payload):
        """A school's record for an admin (audited); never its token."""
        request = _VIEW.load(payload)
        school = self.db.school(request["code"])
        if school is None:
            raise NotFound("school_not_found")
        self.db.audit(
            request["actor"],
            request["code"],
            "school_viewed",
            self.clock(),
            school_code=request["code"],
        )
        self.db.commit()
        return _SCHOOL_INFO.dump(school)

    @rpc
    def set_scim_sources(self, payload):
        """Where the school's SCIM student numbers and ID numbers come from
        (``sources`` None: back to the defaults); audited."""
        request = _SET_SOURCES.load(payload)
        sources = request["sources"]
        if sources is not None:
            sources = {k: v for k, v in sources.items() if v is not None}
            scim.checked_sources(sources)  # refused before it is stored
        row = self.db.set_scim_sources(request["code"], sources or None)
        if row is None:
            raise NotFound("school_not_found")
        self.db.audit(
            request["actor"],
            request["code"],
            "scim_sources_set",
            self.clock(),
            school_code=request["code"],
        )
        self.db.commit()
        return _sources_answer(row)

    @rpc
    def scim_sources(self, payload):
        request = _VIEW.load(payload)
        row = self.db.scim_sources(request["code"])
        if row is None:
            raise NotFound("school_not_found")
        return _sources_answer(row)
