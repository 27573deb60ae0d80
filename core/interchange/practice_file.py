"""The practice as one TOML file: clinics, rooms and equipment, services (with their documents),
packages, providers (clinics, services, weekly hours, time off), cancellation policies and
edited message templates.

`export_practice` writes it (in creation order, so the same practice always gives the same
file and importing it into an empty database gives the rows the same ids);
`import_practice` applies one in the caller's transaction: rows are matched by name, created or
updated, and a report says what changed (and what was left out: a provider's link to a user
account this site does not have, as accounts are per site). A bad file is refused with its line
and the reason, and because every step runs in one transaction, nothing is changed. An import
that changed anything is audited as one event too (who, what was created and updated), beside
each change's own. A byte-order mark before the text is ignored. A table or
key the file does not have (a typo: [[provider]], buffer_before) is refused too, with the known
one closest to it (KEYS), rather than being left out without a word. The demo
data is such a file (core/demo_practice.toml).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from difflib import get_close_matches
from typing import Any

import tomli_w
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.errors import DomainError, ValidationError
from core.kernel.exports import record_export
from core.messaging import notify
from core.policy import cancellation
from core.practice import documents, reads, setup
from core.scheduling import schedules
from db.models import (
    AuditEvent,
    CancellationPolicy,
    Clinic,
    DocumentKind,
    FeeBasis,
    NotificationTemplate,
    Package,
    Provider,
    Resource,
    ResourceKind,
    Service,
    ServiceDocument,
    TimeOff,
    User,
    WorkingHours,
)

FORMAT = 1
POLICY_FIELDS = {
    "window_hours": int,
    "late_cancel_fee_cents": int,
    "no_show_fee_cents": int,
    "points_deducted": int,
    "inside_window_needs_approval": bool,
    "outside_window_auto_accept": bool,
    "online_cancel_allowed": bool,
    "max_reschedules": int,
    "policy_text": str,
}
# a fee that is a percentage of the visit's price is written as its percentage instead of its
# fixed amount: late_cancel_fee_percent = 50. A file without it (every file written before
# percentages) states fixed fees and imports as it always did.
PERCENT_KEYS = {
    "late_cancel_fee_percent": ("late_cancel_fee_cents", "late_cancel_fee_basis"),
    "no_show_fee_percent": ("no_show_fee_cents", "no_show_fee_basis"),
}
# what a new version takes over from the one before for a key the file does not have
POLICY_COLUMNS = (
    *POLICY_FIELDS,
    *PERCENT_KEYS,
    *(basis for _, basis in PERCENT_KEYS.values()),
)

# Every key a table of the file may hold: what the export writes, nothing else ("a.b" is the
# list of tables under the key b of an a entry). A key not listed is refused, so a typo
# (buffer_before = 5, [[provider]]) is not imported as nothing or as the default.
KEYS = {
    "clinics": ("name", "timezone", "address", "phone", "email", "locale", "currency", "active"),
    "resources": ("clinic", "name", "kind", "quantity", "active"),
    "services": (
        "name",
        "category",
        "duration_minutes",
        "buffer_before_minutes",
        "buffer_after_minutes",
        "price_cents",
        "virtual_allowed",
        "online_allowed",
        "active",
        "needs",
        "documents",
    ),
    "services.needs": ("clinic", "resource"),
    "services.documents": ("kind", "title", "body", "questions"),
    "services.documents.questions": ("key", "label", "type", "options", "required"),
    "packages": ("name", "services", "price_cents", "active"),
    "providers": (
        "name",
        "title",
        "email",
        "colour",
        "active",
        "clinics",
        "services",
        "user",
        "hours",
        "time_off",
    ),
    "providers.hours": ("clinic", "day", "starts", "ends"),
    "providers.time_off": ("starts", "ends", "reason"),
    "policies": ("clinic", "service", *POLICY_FIELDS, *PERCENT_KEYS),
    "templates.*": ("subject", "body"),  # under [templates], one table per template's key
}
TABLES = ("clinics", "resources", "services", "packages", "providers", "policies", "templates")


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)  # imported, with something left out

    @property
    def lines(self) -> list[str]:
        return (
            [f"created {c}" for c in self.created]
            + [f"updated {u}" for u in self.updated]
            + [f"{self.unchanged} unchanged"]
            + [f"warning: {w}" for w in self.warnings]
        )


# ---------------------------------------------------------------- export


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def practice_data(session: Session, actor: Actor) -> dict[str, Any]:
    ensure(actor, Permission.PRACTICE_READ)
    setup_ = reads.overview(session, actor)
    for rows in (setup_.clinics, setup_.providers, setup_.services, setup_.packages):
        rows.sort(key=lambda r: r.id)  # creation order: an import recreates the same ids
    clinic_name = {c.id: c.name for c in setup_.clinics}
    service_name = {s.id: s.name for s in setup_.services}
    resource_of = {r.id: r.data for r in setup_.resources}
    usernames = dict(session.execute(select(User.id, User.username)).all())
    clinics = [
        {
            "name": c.name,
            "timezone": c.data.timezone,
            "address": c.data.address,
            "phone": c.data.phone,
            "email": c.data.email,
            "locale": c.data.locale,
            "currency": c.data.currency,
            "active": c.data.active,
        }
        for c in setup_.clinics
    ]
    resources = sorted(
        (
            {
                "clinic": clinic_name[r.data.clinic_id],
                "name": r.name,
                "kind": r.data.kind.value,
                "quantity": r.data.quantity,
                "active": r.data.active,
            }
            for r in setup_.resources
        ),
        key=lambda r: (r["clinic"], r["name"]),
    )
    services = []
    for s in setup_.services:
        d = s.data
        entry = {
            "name": s.name,
            "category": d.category,
            "duration_minutes": d.duration_minutes,
            "buffer_before_minutes": d.buffer_before_minutes,
            "buffer_after_minutes": d.buffer_after_minutes,
            "price_cents": d.price_cents,
            "virtual_allowed": d.virtual_allowed,
            "online_allowed": d.online_allowed,
            "active": d.active,
            "needs": sorted(
                [
                    {
                        "clinic": clinic_name[resource_of[r].clinic_id],
                        "resource": resource_of[r].name,
                    }
                    for r in d.resource_ids
                ],
                key=lambda n: (n["clinic"], n["resource"]),
            ),
        }
        docs = session.scalars(
            select(ServiceDocument)
            .where(ServiceDocument.service_id == s.id, ServiceDocument.active.is_(True))
            .order_by(ServiceDocument.kind)
        )
        entry["documents"] = [
            {
                "kind": doc.kind.value,
                "title": doc.title,
                "body": doc.body,
                "questions": list(doc.questions or []),
            }
            for doc in docs
        ]
        services.append(entry)
    packages = [
        {
            "name": p.name,
            "services": [service_name[i] for i in p.data.service_ids],
            "price_cents": p.data.price_cents,
            "active": p.data.active,
        }
        for p in setup_.packages
    ]
    providers = []
    for p in setup_.providers:
        d = p.data
        hours = session.execute(
            select(Clinic.name, WorkingHours.weekday, WorkingHours.starts, WorkingHours.ends)
            .join(Clinic, Clinic.id == WorkingHours.clinic_id)
            .where(WorkingHours.provider_id == p.id)
            .order_by(Clinic.name, WorkingHours.weekday, WorkingHours.starts)
        )
        away = session.scalars(
            select(TimeOff).where(TimeOff.provider_id == p.id).order_by(TimeOff.starts_at)
        )
        providers.append(
            {
                "name": p.name,
                "title": d.title,
                "email": d.email,
                "colour": d.colour,
                "active": d.active,
                "clinics": sorted(clinic_name[c] for c in d.clinic_ids),
                "services": sorted(service_name[s] for s in d.service_ids),
                "user": usernames.get(d.user_id, "") if d.user_id else "",
                "hours": [
                    {
                        "clinic": c,
                        "day": schedules.WEEKDAYS[w],
                        "starts": f"{a:%H:%M}",
                        "ends": f"{b:%H:%M}",
                    }
                    for c, w, a, b in hours
                ],
                "time_off": [
                    {"starts": _utc(t.starts_at), "ends": _utc(t.ends_at), "reason": t.reason}
                    for t in away
                ],
            }
        )
    policies = []
    seen: dict[tuple[int, int | None], CancellationPolicy] = {}
    for row in session.scalars(select(CancellationPolicy).order_by(CancellationPolicy.version)):
        seen[(row.clinic_id, row.service_id)] = row
    for (clinic_id, service_id), row in seen.items():
        entry = {"clinic": clinic_name[clinic_id], "service": service_name.get(service_id, "")}
        entry |= {f: getattr(row, f) for f in POLICY_FIELDS}
        for percent, (cents, basis) in PERCENT_KEYS.items():
            if getattr(row, basis) == FeeBasis.PERCENT:  # its percentage, where its amount was
                entry = {(percent if k == cents else k): v for k, v in entry.items()}
                entry[percent] = getattr(row, percent)
        policies.append(entry)
    policies.sort(key=lambda p: (p["clinic"], p["service"]))
    templates = {
        t.key: {"subject": t.subject, "body": t.body}
        for t in session.scalars(select(NotificationTemplate).order_by(NotificationTemplate.key))
    }
    return {
        "format": FORMAT,
        "clinics": clinics,
        "resources": resources,
        "services": services,
        "packages": packages,
        "providers": providers,
        "policies": policies,
        "templates": templates,
    }


def export_practice(session: Session, actor: Actor) -> str:
    """The practice file's text, audited like every export (who, and how many entries: one per
    clinic, resource, service, package, provider, policy and template); call it in a writing
    transaction, or the audit event is rolled back with it."""
    data = practice_data(session, actor)
    entries = sum(len(data[table]) for table in TABLES)
    record_export(session, actor, "practice_file", entries, permission=Permission.PRACTICE_READ)
    return tomli_w.dumps(data, multiline_strings=True)


# ---------------------------------------------------------------- import


class _Where:
    """Finds the line of the n-th [[table]] header, so an error can name it, and the line of a
    key inside it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: dict[str, list[int]] = {}
        self.starts: list[tuple[int, str]] = []  # every [table] and [[table]] header, in order
        for number, line in enumerate(self.lines, start=1):
            found = re.match(r"\s*\[(\[?)\s*([A-Za-z0-9_.-]+)\s*\]", line)
            if found:
                self.starts.append((number, found.group(2)))
                if found.group(1):
                    self.headers.setdefault(found.group(2), []).append(number)

    def line(self, table: str, index: int) -> int | None:
        lines = self.headers.get(table, [])
        return lines[index] if index < len(lines) else None

    def header(self, name: str) -> int | None:
        """The line of the first [name] or [[name]] header."""
        return next((n for n, found in self.starts if found == name), None)

    def key(self, key: str, first: int | None, table: str) -> int | None:
        """The first line giving `key` (key = …, inline { key = … }, [[….key]]) from the
        header on line `first` up to the next header outside `table`; else that header's."""
        if first is None:
            return None
        after = [n for n, name in self.starts if n > first and name.split(".")[0] != table]
        last = after[0] if after else len(self.lines) + 1
        given = re.compile(
            rf"(^|[{{,\s])\"?{re.escape(key)}\"?\s*=|^\s*\[\[?\s*[\w.-]*\.{re.escape(key)}\s*\]"
        )
        for number in range(first, last):
            if given.search(self.lines[number - 1]):
                return number
        return first

    def top(self, key: str) -> int | None:
        """The line of a key or table of the file's own (before its first header)."""
        named = [n for n, name in self.starts if name.split(".")[0] == key]
        if named:
            return named[0]
        given = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        last = self.starts[0][0] if self.starts else len(self.lines) + 1
        return next((n for n in range(1, last) if given.search(self.lines[n - 1])), None)


class _Step(Exception):
    def __init__(
        self, table: str, index: int, name: str, reason: str, line: int | None = None
    ) -> None:
        super().__init__(reason)
        self.table, self.index, self.name, self.reason = table, index, name, reason
        self.line = line


def _did_you_mean(key: str, known, listed: str = "it may hold") -> str:
    close = get_close_matches(key, known, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" ({listed} {', '.join(known)})."


def _unknown_keys(data: dict[str, Any], where: _Where) -> None:
    """Refuse a key or table the file does not have, with its line and the closest known
    one: an import would otherwise leave it out without a word."""
    for key, value in data.items():
        if key == "format" or key in TABLES:
            continue
        shown = f"[[{key}]]" if isinstance(value, list) else f"[{key}]"
        if not isinstance(value, list | dict):
            shown = repr(key)
        close = get_close_matches(key, TABLES, n=1)
        hint = f" (it has {', '.join(TABLES)})."
        if close:
            hint = "; did you mean " + (
                "[templates]?" if close[0] == "templates" else f"[[{close[0]}]]?"
            )
        line = where.top(key)
        raise ValidationError(
            f"Nothing was imported. {f'line {line}: ' if line else ''}{shown} is not part of a "
            f"practice file{hint}"
        )

    def check(entry: dict, kind: str, table: str, index: int, name: str) -> None:
        known = KEYS[kind]
        for key, value in entry.items():
            if key not in known:
                what = f"[[{kind}]]" if "." not in kind else kind.split(".")[-1]
                raise _Step(
                    table,
                    index,
                    name,
                    f"{key!r} is not a key of {what}{_did_you_mean(key, known)}",
                    where.key(key, where.line(table, index), table),
                )
            if f"{kind}.{key}" in KEYS and isinstance(value, list):
                for inner in value:
                    if isinstance(inner, dict):
                        check(inner, f"{kind}.{key}", table, index, name)

    for table in TABLES[:-1]:
        entries = data.get(table, [])
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict):
                name = str(entry.get("name", entry.get("clinic", "")))
                check(entry, table, table, index, name)
    templates = data.get("templates", {})
    for key, value in templates.items() if isinstance(templates, dict) else ():
        if key not in notify.TEMPLATES:
            raise _Step(
                "templates",
                0,
                key,
                f"there is no message template {key!r}"
                + _did_you_mean(key, list(notify.TEMPLATES), "they are"),
                where.header(f"templates.{key}") or where.key(key, where.header("templates"), ""),
            )
        if isinstance(value, dict):
            for field_ in value:
                if field_ not in KEYS["templates.*"]:
                    raise _Step(
                        "templates",
                        0,
                        key,
                        f"{field_!r} is not a key of a template"
                        + _did_you_mean(field_, KEYS["templates.*"]),
                        where.key(
                            field_,
                            where.header(f"templates.{key}") or where.header("templates"),
                            "templates",
                        ),
                    )


def parse(text: str) -> dict[str, Any]:
    try:  # a byte-order mark (Notepad's "UTF-8 with BOM") is not part of the text
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as error:
        raise ValidationError(f"The practice file is not valid TOML: {error}.") from None
    if data.get("format") != FORMAT:
        raise ValidationError(f"The practice file must say format = {FORMAT} on its first lines.")
    return data


def import_practice(
    session: Session,
    actor: Actor,
    text: str,
    *,
    policy_effective_at: datetime | None = None,
) -> Report:
    """Apply a practice file (see the module's docstring). Raises ValidationError naming the
    line and the reason; the caller's transaction then changes nothing."""
    ensure(actor, Permission.PRACTICE_MANAGE)
    data = parse(text)
    where = _Where(text)
    report = Report()
    try:
        _unknown_keys(data, where)
        _apply(session, actor, data, report, policy_effective_at)
    except _Step as step:
        line = step.line or where.line(step.table, step.index)
        at = f"line {line}" if line else f"[[{step.table}]] #{step.index + 1}"
        raise ValidationError(
            f"Nothing was imported. {at} ({step.table} {step.name!r}): {step.reason}"
        ) from None
    if report.created or report.updated:  # each change is audited too; this says where from
        audit.record(
            session,
            actor,
            "import",
            "practice_file",
            None,
            message=f"{len(report.created)} created, {len(report.updated)} updated, "
            f"{report.unchanged} unchanged",
            details={
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "warnings": report.warnings,
            },
        )
    return report


def _latest_policy(session: Session, clinic_id: int, service_id: int | None):
    scope = (
        CancellationPolicy.service_id.is_(None)
        if service_id is None
        else CancellationPolicy.service_id == service_id
    )
    return session.scalar(
        select(CancellationPolicy)
        .where(CancellationPolicy.clinic_id == clinic_id, scope)
        .order_by(CancellationPolicy.version.desc())
        .limit(1)
    )


def _marker(session: Session) -> int:
    return session.scalar(select(func.max(AuditEvent.id))) or 0


def _track(session, report: Report, what: str, existed: bool, before: int) -> None:
    if not existed:
        report.created.append(what)
    elif _marker(session) > before:
        report.updated.append(what)
    else:
        report.unchanged += 1


def _id(session: Session, model, name: str, *where) -> int | None:
    return session.scalar(select(model.id).where(model.name == name, *where))


def _get(entry: dict, key: str, kind: type, default: Any = None) -> Any:
    value = entry.get(key, default)
    if value is None:
        raise ValueError(f"{key} is missing")
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{key} must be {kind.__name__}, not {value!r}")
    return value


def _names(entry: dict, key: str) -> list[str]:
    """A list of names (clinics, services), each a quoted string."""
    names = _get(entry, key, list, [])
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{key} must be a list of names in quotes, not {name!r}")
    return names


def _tables(entry: dict, key: str, like: str) -> list[dict]:
    """A list of inline tables ({ clinic = …, day = … }) or [[table.key]] tables."""
    tables = _get(entry, key, list, [])
    for table in tables:
        if not isinstance(table, dict):
            raise ValueError(f"{key} must be a list of tables like {{ {like} }}, not {table!r}")
    return tables


def _time_of_day(entry: dict, key: str) -> time:
    """A time as the export writes it ("08:00") or as a TOML time (08:00:00)."""
    value = entry.get(key)
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f'{key} must be a time of day as "HH:MM", not {value!r}') from None


def _moment(entry: dict, key: str) -> datetime:
    """A moment as the export writes it ("2027-01-04T09:00:00Z") or as a TOML date-time."""
    value = entry.get(key)
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(
            f'{key} must be a date and time as "2027-01-04T09:00:00Z", not {value!r}'
        ) from None


def _run(table: str, entries: list[dict], step) -> None:
    if not isinstance(entries, list):
        raise _Step(table, 0, "", f"{table} must be a list of [[{table}]] tables")
    for index, entry in enumerate(entries):
        name = str(entry.get("name", entry.get("clinic", ""))) if isinstance(entry, dict) else ""
        try:
            if not isinstance(entry, dict):
                raise ValueError("expected a table")
            step(entry)
        except KeyError as error:
            raise _Step(table, index, name, f"{error.args[0]} is missing") from None
        except (DomainError, ValueError) as error:
            raise _Step(table, index, name, str(error)) from None


@contextmanager
def _unconfirmed(page: str, changed: dict[str, str] | None = None) -> Iterator[None]:
    """A file cannot answer the set-up's "Confirm to … anyway" (a time zone or currency
    changed, a service's price, length or rooms, or a deactivation, under visits booked
    ahead): the refusal says what the file would do and where to do it (the page asks); the
    file then imports as it is. `changed`: the new value of each thing the file may change
    ("time zone": "America/New_York")."""
    try:
        yield
    except setup.NeedsConfirmation as asked:
        if asked.change == "deactivate":
            did, do = "deactivates it", "deactivate it"
        elif asked.change == "service":
            did, do = "changes its price, length, buffers or rooms", "save it"
        elif asked.change == "resource":
            did, do = "lowers its quantity below what visits booked ahead hold", "save it"
        elif asked.change == "package":
            did, do = "changes its price", "save it"
        elif asked.change == "policy":
            did, do = "makes its terms harder for visits booked ahead", "save the new version"
        else:
            did = "changes its " + " and ".join(
                f"{what} to {changed[what]}" for what in asked.change.split(" and ")
            )
            do = "change it"
        raise ValueError(
            f"the file {did}. {asked.warning} A file cannot confirm this: {do} on the {page} "
            "page, which asks you to, then import the file again."
        ) from None


def _apply(session, actor, data, report, effective_at) -> None:
    def clinic_id(name: str) -> int:
        found = _id(session, Clinic, name)
        if found is None:
            raise ValueError(f"there is no clinic {name!r} (list it under [[clinics]])")
        return found

    def service_id(name: str) -> int:
        found = _id(session, Service, name)
        if found is None:
            raise ValueError(f"there is no service {name!r} (list it under [[services]])")
        return found

    def clinic(entry):
        name = _get(entry, "name", str)
        existing, before = _id(session, Clinic, name), _marker(session)
        values = setup.ClinicData(
            name,
            _get(entry, "timezone", str),
            _get(entry, "address", str, ""),
            _get(entry, "phone", str, ""),
            _get(entry, "email", str, ""),
            _get(entry, "locale", str, "en-GB"),
            _get(entry, "currency", str, "GBP"),
            _get(entry, "active", bool, True),
        )
        changed = {"time zone": values.timezone, "currency": values.currency.upper()}
        with _unconfirmed("Clinics and rooms", changed):
            setup.save_clinic(session, actor, values, existing)
        _track(session, report, f"clinic {name}", existing is not None, before)

    def resource(entry):
        name, cid = _get(entry, "name", str), clinic_id(_get(entry, "clinic", str))
        existing, before = _id(session, Resource, name, Resource.clinic_id == cid), _marker(session)
        kind = _get(entry, "kind", str, "room")
        if kind not in {k.value for k in ResourceKind}:
            raise ValueError("kind must be room or equipment")
        values = setup.ResourceData(
            cid,
            name,
            ResourceKind(kind),
            _get(entry, "quantity", int, 1),
            _get(entry, "active", bool, True),
        )
        with _unconfirmed("Clinics and rooms"):
            setup.save_resource(session, actor, values, existing)
        _track(
            session, report, f"resource {name} ({entry['clinic']})", existing is not None, before
        )

    def service(entry):
        name = _get(entry, "name", str)
        needs = []
        for need in _tables(entry, "needs", "clinic = …, resource = …"):
            cid = clinic_id(_get(need, "clinic", str))
            rid = _id(session, Resource, _get(need, "resource", str), Resource.clinic_id == cid)
            if rid is None:
                raise ValueError(f"there is no resource {need['resource']!r} at {need['clinic']}")
            needs.append(rid)
        existing, before = _id(session, Service, name), _marker(session)
        keep = (
            reads.overview(session, actor).services if existing is not None else []
        )  # providers are set from the provider side
        providers = next((s.data.provider_ids for s in keep if s.id == existing), ())
        values = setup.ServiceData(
            name,
            _get(entry, "duration_minutes", int),
            _get(entry, "category", str, ""),
            _get(entry, "buffer_before_minutes", int, 0),
            _get(entry, "buffer_after_minutes", int, 0),
            _get(entry, "price_cents", int, 0),
            _get(entry, "virtual_allowed", bool, False),
            _get(entry, "online_allowed", bool, True),
            tuple(providers),
            tuple(needs),
            _get(entry, "active", bool, True),
        )
        with _unconfirmed("Services"):
            sid = setup.save_service(session, actor, values, existing)
        for doc in _tables(entry, "documents", "kind = …, title = …, body = …"):
            kind = doc.get("kind", "")
            if kind not in {k.value for k in DocumentKind}:
                raise ValueError("a document's kind must be questionnaire, consent or instructions")
            documents.save_document(
                session,
                actor,
                sid,
                kind,
                _get(doc, "title", str, ""),
                _get(doc, "body", str, ""),
                _get(doc, "questions", list, []),
            )
        _track(session, report, f"service {name}", existing is not None, before)

    def package(entry):
        name = _get(entry, "name", str)
        existing, before = _id(session, Package, name), _marker(session)
        values = setup.PackageData(
            name,
            tuple(service_id(s) for s in _names(entry, "services")),
            _get(entry, "price_cents", int, 0),
            _get(entry, "active", bool, True),
        )
        with _unconfirmed("Packages"):
            setup.save_package(session, actor, values, existing)
        _track(session, report, f"package {name}", existing is not None, before)

    def provider(entry):
        name = _get(entry, "name", str)
        existing, before = _id(session, Provider, name), _marker(session)
        username = _get(entry, "user", str, "")
        user_id = None
        if username:
            user_id = session.scalar(select(User.id).where(User.username == username))
            if user_id is None:  # accounts (and passwords) belong to a site, not to the file
                kept = session.get(Provider, existing).user_id if existing else None
                user_id = kept
                report.warnings.append(
                    f"provider {name}: there is no user account {username!r} here, so "
                    + ("their link to an account is kept" if kept else "no account is linked")
                    + "; create it on Users and link it on Providers."
                )
        values = setup.ProviderData(
            name,
            _get(entry, "title", str, ""),
            _get(entry, "email", str, ""),
            _get(entry, "colour", str, "#4c78a8"),
            tuple(clinic_id(c) for c in _names(entry, "clinics")),
            tuple(service_id(s) for s in _names(entry, "services")),
            user_id,
            _get(entry, "active", bool, True),
        )
        with _unconfirmed("Providers"):
            pid = setup.save_provider(session, actor, values, existing)
        by_clinic: dict[str, list[schedules.HoursRow]] = {}
        for h in _tables(entry, "hours", 'clinic = …, day = "Monday", starts = …, ends = …'):
            if h.get("day") not in schedules.WEEKDAYS:
                raise ValueError(f"day must be one of {', '.join(schedules.WEEKDAYS)}")
            by_clinic.setdefault(_get(h, "clinic", str), []).append(
                schedules.HoursRow(
                    schedules.WEEKDAYS.index(h["day"]),
                    _time_of_day(h, "starts"),
                    _time_of_day(h, "ends"),
                )
            )
        known = set(
            session.scalars(
                select(Clinic.name)
                .join(WorkingHours, WorkingHours.clinic_id == Clinic.id)
                .where(WorkingHours.provider_id == pid)
            )
        )
        for clinic_name in sorted(known | set(by_clinic)):
            cid = clinic_id(clinic_name)
            wanted = sorted(by_clinic.get(clinic_name, []), key=lambda r: (r.weekday, r.starts))
            current = schedules.get_hours(session, actor, pid, cid)
            if [(r.weekday, r.starts, r.ends) for r in current] != [
                (r.weekday, r.starts, r.ends) for r in wanted
            ]:
                schedules.set_weekly_hours(
                    session, actor, provider_id=pid, clinic_id=cid, hours=wanted
                )
        for t in _tables(entry, "time_off", "starts = …, ends = …, reason = …"):
            starts, ends = _moment(t, "starts"), _moment(t, "ends")
            same = session.scalar(
                select(TimeOff.id).where(
                    TimeOff.provider_id == pid, TimeOff.starts_at == starts, TimeOff.ends_at == ends
                )
            )
            if same is None:
                schedules.add_time_off(
                    session,
                    actor,
                    provider_id=pid,
                    starts_at=starts,
                    ends_at=ends,
                    reason=_get(t, "reason", str, ""),
                    past=True,  # the file's record, kept as it was
                )
        _track(session, report, f"provider {name}", existing is not None, before)

    def policy(entry):
        cid = clinic_id(_get(entry, "clinic", str))
        sname = _get(entry, "service", str, "")
        sid = service_id(sname) if sname else None
        values = {f: _get(entry, f, kind) for f, kind in POLICY_FIELDS.items() if f in entry}
        for percent, (cents, basis) in PERCENT_KEYS.items():
            if percent in entry and cents in entry:
                raise ValueError(
                    f"give {cents} (a fixed amount) or {percent} (a percentage of the visit's "
                    "price), not both"
                )
            if percent in entry:
                values |= {basis: FeeBasis.PERCENT, percent: _get(entry, percent, int)}
            elif cents in entry:
                values[basis] = FeeBasis.FIXED
        current = _latest_policy(session, cid, sid)
        before = _marker(session)
        same = (
            current is not None
            and current.service_id == sid
            and all(getattr(current, f) == v for f, v in values.items())
        )
        if not same:
            # a new policy whose fee is a percentage has no fixed amount to keep: none
            unset = {cents: 0 for cents, _ in PERCENT_KEYS.values()}
            base = {f: getattr(current, f) for f in POLICY_COLUMNS} if current else unset
            with _unconfirmed("Cancellation policy"):
                cancellation.save_policy(
                    session,
                    actor,
                    clinic_id=cid,
                    service_id=sid,
                    effective_at=effective_at,
                    **(base | values),
                )
        what = f"policy {entry['clinic']}" + (f" / {sname}" if sname else "")
        _track(session, report, what, current is not None, before)

    _run("clinics", data.get("clinics", []), clinic)
    _run("resources", data.get("resources", []), resource)
    _run("services", data.get("services", []), service)
    _run("packages", data.get("packages", []), package)
    _run("providers", data.get("providers", []), provider)
    _run("policies", data.get("policies", []), policy)
    templates = data.get("templates", {})
    for index, (key, value) in enumerate(sorted(templates.items())):
        try:
            edited = session.get(NotificationTemplate, key)
            if edited and (edited.subject, edited.body) == (value["subject"], value["body"]):
                report.unchanged += 1
                continue
            notify.save_template(session, actor, key, value.get("subject", ""), value["body"])
            (report.updated if edited else report.created).append(f"template {key}")
        except (DomainError, KeyError, TypeError) as error:
            raise _Step("templates", index, key, str(error)) from None
