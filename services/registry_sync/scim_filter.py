"""The SCIM filter compiler: a parsed RFC 7644 filter (scim2-models' AST)
becomes a SQL WHERE over whitelisted columns with bound parameters, and a
sortBy an ORDER BY — no attribute name or value from a client ever reaches
the SQL text. Used by ``scim_entrypoints`` with ``store.list_resources``."""

import re
from datetime import datetime, timezone

from scim2_models.path import AttrPath, FilterVisitor

from services.common.contract.errors import InvalidRequest

__all__ = ["FilterSql", "parse_attr_path"]


_CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:user"
_CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:group"
FILTER_COLUMNS = {
    "User": {
        ("id", None): ("id::text", "exact"),
        ("externalid", None): ("external_id", "exact"),
        ("username", None): ("user_name", "ci"),
        ("displayname", None): ("display_name", "ci"),
        ("active", None): ("active", "bool"),
        ("name", "formatted"): ("formatted_name", "ci"),
        ("name", "familyname"): ("family_name", "ci"),
        ("name", "givenname"): ("given_name", "ci"),
        ("meta", "lastmodified"): ("updated_at", "time"),
        ("meta", "created"): ("created_at", "time"),
        ("studentnumber", None): ("student_number", "exact"),
        ("idtype", None): ("id_type", "ci"),
        ("grade", None): ("grade", "ci"),
        ("classname", None): ("class_name", "ci"),
        ("department", None): ("department", "ci"),
        ("enrollmentyear", None): ("enrollment_year", "int"),
        ("status", None): ("status", "ci"),
    },
    "Group": {
        ("id", None): ("id::text", "exact"),
        ("externalid", None): ("external_id", "exact"),
        ("displayname", None): ("display_name", "ci"),
        ("meta", "lastmodified"): ("updated_at", "time"),
        ("meta", "created"): ("created_at", "time"),
    },
}
_EXTENSION_ATTRIBUTES = {
    "studentnumber",
    "idtype",
    "grade",
    "classname",
    "department",
    "enrollmentyear",
    "status",
}
_SQL_OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _invalid_filter(detail):
    return InvalidRequest(
        "scim_invalid_filter", {"scimType": "invalidFilter", "scim_detail": detail}
    )


_ATTR_PATH = re.compile(
    r"^(?:(urn:[\w.:-]+):)?([A-Za-z][\w$-]*)(?:\.([A-Za-z][\w$-]*))?$"
)


def parse_attr_path(text):
    """``[urn:…:]attr[.sub]`` (a sortBy value) as an AttrPath."""
    match = _ATTR_PATH.match(text or "")
    if not match:
        raise ValueError(text)
    uri, attr, sub = match.groups()
    return AttrPath(attr=attr, sub_attr=sub, uri=uri)


def _like_escape(text):
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class FilterSql(FilterVisitor):
    """A parsed SCIM filter -> a SQL condition over whitelisted columns with
    every value bound as a parameter (never spliced into the text)."""

    def __init__(self, kind, extension_urn):
        self.kind = kind
        self.columns = FILTER_COLUMNS[kind]
        self.extension_urn = extension_urn.lower()
        self.params = {}

    def _bind(self, value):
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def column(self, attr_path):
        uri = (attr_path.uri or "").lower()
        attr = attr_path.attr.lower()
        sub = attr_path.sub_attr.lower() if attr_path.sub_attr else None
        core = _CORE_USER if self.kind == "User" else _CORE_GROUP
        if uri and uri not in (core, self.extension_urn):
            raise _invalid_filter(f"unknown schema in {attr_path}")
        if uri == self.extension_urn and attr not in _EXTENSION_ATTRIBUTES:
            raise _invalid_filter(f"{attr_path} cannot be filtered on")
        found = self.columns.get((attr, sub))
        if found is None:
            raise _invalid_filter(f"{attr_path} cannot be filtered on")
        return found

    def _value(self, kind, value, attr_path):
        if kind == "time":
            if isinstance(value, datetime):
                return value
            try:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                raise _invalid_filter(f"{attr_path} needs a dateTime") from None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise _invalid_filter(f"{attr_path} needs an integer")
            return value
        if kind == "bool":
            if not isinstance(value, bool):
                raise _invalid_filter(f"{attr_path} needs true or false")
            return value
        if not isinstance(value, str):
            raise _invalid_filter(f"{attr_path} needs a string")
        return value.lower() if kind == "ci" else value

    def visit_comparison(self, node):
        expression, kind = self.column(node.attr_path)
        op = node.op.value
        if kind == "ci":
            expression = f"lower({expression})"
        if node.value is None:
            if op == "eq":
                return f"({expression} IS NULL)"
            if op == "ne":
                return f"({expression} IS NOT NULL)"
            raise _invalid_filter(f"{op} null is meaningless")
        value = self._value(kind, node.value, node.attr_path)
        if op in ("co", "sw", "ew"):
            if kind not in ("ci", "exact"):
                raise _invalid_filter(f"{op} applies to strings only")
            pattern = _like_escape(value)
            pattern = {"co": f"%{pattern}%", "sw": f"{pattern}%", "ew": f"%{pattern}"}[
                op
            ]
            return f"({expression} LIKE {self._bind(pattern)})"
        if kind == "bool" and op not in ("eq", "ne"):
            raise _invalid_filter(f"{op} does not apply to booleans")
        return f"({expression} {_SQL_OPERATORS[op]} {self._bind(value)})"

    def visit_present(self, node):
        expression, kind = self.column(node.attr_path)
        if kind in ("ci", "exact"):
            return f"({expression} IS NOT NULL AND {expression} <> '')"
        return f"({expression} IS NOT NULL)"

    def visit_not(self, node):
        return f"(NOT COALESCE({self.visit(node.expr)}, false))"

    def visit_logical_expr(self, node):
        joiner = " AND " if node.op.value == "and" else " OR "
        return "(" + joiner.join(self.visit(term) for term in node.terms) + ")"

    def visit_value_path(self, node):
        # members[value eq "…"] on Groups is the one multi-valued attribute
        # worth filtering on: which classes hold this student.
        if self.kind != "Group" or node.attr_path.attr.lower() != "members":
            raise _invalid_filter(f"{node.attr_path} cannot be filtered on")
        inner = node.val_filter
        if not (
            hasattr(inner, "attr_path")
            and inner.attr_path.attr.lower() == "value"
            and getattr(inner, "op", None) is not None
            and inner.op.value == "eq"
        ):
            raise _invalid_filter('only members[value eq "…"] is supported')
        return (
            "(EXISTS (SELECT 1 FROM class_members m WHERE m.class_id = classes.id"
            f" AND m.student_id::text = {self._bind(str(inner.value))}))"
        )

    def order_by(self, sort_by, descending):
        if not sort_by:
            return "created_at, id"
        try:
            attr_path = parse_attr_path(sort_by)
        except ValueError:
            raise InvalidRequest(
                "scim_invalid_sort",
                {"scimType": "invalidValue", "scim_detail": sort_by},
            ) from None
        expression, kind = self.column(attr_path)
        if kind == "ci":
            expression = f"lower({expression})"
        direction = "DESC" if descending else "ASC"
        return f"{expression} {direction} NULLS LAST, id"


# -- registry verification ----------------------------------------------------------
