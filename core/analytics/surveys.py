"""Survey analytics: NPS, CSAT, average ratings with 95% intervals, trends, the response funnel,
recent detractors and the comment feed. Every figure is aggregated in SQL (counts and sums of x
and x² per group); Python only turns those sums into percentages and intervals.

Formulas (also written on the page):
- NPS = % promoters (9–10) − % detractors (0–6), over responses that have a 0–10 answer
  (imported responses with only a star rating have none and are left out of NPS).
- CSAT = share of 4s and 5s among the 1–5 ratings.
- Mean rating x̄ with n ratings; 95% interval x̄ ± t(0.975, n−1) · s/√n, where
  s² = (Σx² − (Σx)²/n)/(n − 1), cut at 1 and 5 (the scale's ends); none when the ratings are
  all the same (s = 0). Groups with fewer than MIN_N ratings are marked.
- By service: each response under the service its visit was booked as; a visit booked as a
  package is its own group ("Package: name"), never counted under its first service (as on
  Cancellations): the response records the package when it is written.
- Filtered by a service: the responses to visits holding it, booked as it, as a package
  holding it or with it among several services, wherever it comes in them (as on
  Cancellations); the funnel's visits likewise.
- Filtered by a provider: the responses recording that provider (the one their figures are
  grouped by); the funnel's visits of that provider.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from functools import cache

import pandas as pd
from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from core.analytics.cancellation_parts import DAY, epoch_seconds, in_ids, offset_periods
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import local_days_bounds
from core.kernel.errors import ValidationError
from core.kernel.money import clinic_format, format_moment
from db.models import (
    Appointment,
    AppointmentService,
    AppointmentStatus,
    Clinic,
    FeedbackStatus,
    Package,
    Provider,
    Service,
    SurveyResponse,
)
from db.types import UTCDateTime, utcnow

MIN_N = 10
SCALE = (1.0, 5.0)  # the overall rating's ends
COMMENTS_PAGE = 20
DETRACTOR_DAYS = 7
PACKAGE = "Package: "  # a package's group is labelled with its name after this, as on Cancellations
R = SurveyResponse
# two-sided 95% Student t quantiles for 1..30 degrees of freedom
_T95 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def t95(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (z + (z³+z)/4df above 30)."""
    if df < 1:
        raise ValueError("at least one degree of freedom is needed")
    return _T95[df - 1] if df <= 30 else 1.959964 + 2.3719 / df


@dataclass(frozen=True)
class SurveyFilter:
    """Responses submitted in [since, until) (UTC), optionally of one clinic; `tz` is the zone
    whose days the trends are grouped by (the clinic's, or the practice's for all clinics).

    All clinics: `own_days` holds (clinic, zone, since, until) for each clinic whose zone is not
    `tz`; its responses are counted and grouped by its own days, as the Cancellations page does,
    so that all clinics add up to the sum of the clinics. `span` is the earliest start and the
    latest end of them all (the index range read), `core` the hours in every clinic's days.

    `service_id`: only the responses to visits holding the service (holds_service); `later`
    is what a read takes them from beyond those booked as it, the ids of the visits holding
    it after their first service (the period's responses' visits, or the funnel's visits),
    read once per call (with_service); None: looked up in each statement. `provider_id`:
    only the responses recording that provider (the column the figures by provider group
    by), and in the funnel the visits of that provider."""

    since: datetime
    until: datetime
    clinic_id: int | None = None
    tz: str = "UTC"
    own_days: tuple[tuple[int, str, datetime, datetime], ...] = ()
    span: tuple[datetime, datetime] | None = None
    core: tuple[datetime, datetime] | None = None
    service_id: int | None = None
    later: tuple[int, ...] | None = None
    provider_id: int | None = None

    def __post_init__(self) -> None:
        lows = [self.since, *(d[2] for d in self.own_days)]
        highs = [self.until, *(d[3] for d in self.own_days)]
        if self.span is None:
            object.__setattr__(self, "span", (min(lows), max(highs)))
        if self.core is None:  # in every clinic's days (empty when their days do not overlap)
            object.__setattr__(self, "core", (max(lows), max(max(lows), min(highs))))


def filter_for_days(
    first: date,
    last: date,
    tz: str = "UTC",
    clinic_id: int | None = None,
    zones: Iterable[tuple[int, str]] = (),
    service_id: int | None = None,
    provider_id: int | None = None,
) -> SurveyFilter:
    """The filter for clinic-local days `first`..`last` (both included), trends by those days.
    All clinics: `zones` are the clinics' (id, time zone); each clinic's responses are taken
    and grouped by its own days, those of no clinic (or of one not given) by `tz`'s.
    `service_id`: the responses to visits holding that service only; `provider_id`: those
    recording that provider only."""
    if last < first:
        raise ValidationError("The end date must be on or after the start date.")
    own = ()
    if clinic_id is None:
        own = tuple(
            (cid, zone, *local_days_bounds(first, last, zone))
            for cid, zone in sorted(set(zones))
            if zone != tz
        )
    bounds = local_days_bounds(first, last, tz)
    return SurveyFilter(*bounds, clinic_id, tz, own, service_id=service_id, provider_id=provider_id)


@dataclass(frozen=True)
class Figures:
    """The SQL sums one group's figures come from."""

    responses: int = 0
    nps_n: int = 0
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    rating_n: int = 0
    rating_sum: int = 0
    rating_sumsq: int = 0
    satisfied: int = 0  # ratings of 4 or 5

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, n) + getattr(other, n) for n in _FIELDS))

    @property
    def nps(self) -> float | None:
        return 100 * (self.promoters - self.detractors) / self.nps_n if self.nps_n else None

    @property
    def csat(self) -> float | None:
        return 100 * self.satisfied / self.rating_n if self.rating_n else None

    @property
    def mean(self) -> float | None:
        return self.rating_sum / self.rating_n if self.rating_n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The mean's 95% t-interval, cut at the scale's ends (a rating is never below 1 nor
        above 5, nor is its mean); None under two ratings, or when they are all the same: with
        no spread among them there is nothing to estimate the interval from (t · 0 would claim
        a certainty that a handful of equal ratings does not give)."""
        n = self.rating_n
        spread = n * self.rating_sumsq - self.rating_sum**2  # n(n − 1)s², exact in integers
        if n < 2 or spread <= 0:
            return None
        half = t95(n - 1) * math.sqrt(spread / (n * (n - 1)) / n)
        return max(SCALE[0], self.mean - half), min(SCALE[1], self.mean + half)

    @property
    def enough(self) -> bool:
        return self.rating_n >= MIN_N


_FIELDS = tuple(f.name for f in fields(Figures))


def _sums():
    return (
        func.count(),
        func.count(R.nps),
        func.coalesce(func.sum(case((R.nps >= 9, 1), else_=0)), 0),
        func.coalesce(func.sum(case((R.nps.between(7, 8), 1), else_=0)), 0),
        func.coalesce(func.sum(case((R.nps <= 6, 1), else_=0)), 0),
        func.count(R.rating),
        func.coalesce(func.sum(R.rating), 0),
        func.coalesce(func.sum(R.rating * R.rating), 0),
        func.coalesce(func.sum(case((R.rating >= 4, 1), else_=0)), 0),
    )


def _figures(values) -> Figures:
    return Figures(*(int(v or 0) for v in values))


def _own_days(f: SurveyFilter, at, clinic):
    """Whether `at` is in its clinic's days (the filter's zone's for the other clinics and for
    no clinic), as a CASE on the clinic."""
    own = [(clinic == cid, and_(at >= low, at < high)) for cid, _, low, high in f.own_days]
    return case(*own, else_=and_(at >= f.since, at < f.until))


# what the service filter reads of a response: the service its visit was booked as and its
# visit (`later` holds visits; looked up when `later` is None)
RESPONSE = (R.service_id, R.appointment_id, R.appointment_id)


def holds_service(f: SurveyFilter, held=RESPONSE) -> list:
    """The service filter's condition (none without one) on a response, or on a visit with
    `held` (its service, its visit's id for `later`, its visit's id): booked as the service,
    or holding it after its first service, from `later` (in_ids), else looked up in
    appointment_services."""
    if f.service_id is None:
        return []
    service, ident, visit = held
    if f.later is not None:
        return [or_(service == f.service_id, in_ids(ident, f.later))]
    query = select(AppointmentService.appointment_id).where(
        AppointmentService.position > 0, AppointmentService.service_id == f.service_id
    )
    return [or_(service == f.service_id, visit.in_(query))]


def narrowed(f: SurveyFilter, held=RESPONSE, provider=R.provider_id) -> list:
    """The provider filter's condition on the `provider` column (a response's, or a visit's)
    and the service filter's (holds_service); none without them."""
    mine = [] if f.provider_id is None else [provider == f.provider_id]
    return mine + holds_service(f, held)


def in_period(f: SurveyFilter, at, clinic, held=RESPONSE, provider=R.provider_id) -> list:
    """The filter's conditions on a moment `at` and its `clinic` (columns): one range, or, with
    clinics of other zones, the range of them all (read on the index), and near its ends each
    clinic's own days; and the provider's and service's (narrowed)."""
    conditions = [at >= f.span[0], at < f.span[1]]
    if f.own_days:
        every = and_(at >= f.core[0], at < f.core[1])  # in every clinic's days
        conditions.append(or_(every, _own_days(f, at, clinic)))
    if f.clinic_id is not None:
        conditions.append(clinic == f.clinic_id)
    return conditions + narrowed(f, held, provider)


def pieces(f: SurveyFilter, at, clinic) -> list[list]:
    """The filter's conditions as disjoint pieces whose figures add up: one, or, with clinics
    of other zones, the hours in every clinic's days (an index range, nothing evaluated per
    row) and the few hours before and after them, each clinic there by its own days."""
    if not f.own_days:
        return [in_period(f, at, clinic)]
    (low, high), (first, last) = f.span, f.core
    own, held = _own_days(f, at, clinic), narrowed(f)
    return [
        [at >= first, at < last, *held],
        [at >= low, at < first, own, *held],
        [at >= last, at < high, own, *held],
    ]


def with_service(session: Session, f: SurveyFilter) -> SurveyFilter:
    """The filter with `later` read (once per call, as the Cancellations page's figures read
    theirs): the visits holding the service after their first one, of the responses of its
    range and clinic. Their visits, not the responses' ids: appointment_id is in the figures'
    covering indexes (all providers', one provider's; migrations 0029 and 0030), so the
    look-up and the figures are index-only reads on both databases (PostgreSQL's indexes
    hold no row id; the responses' ids sent the figures back to the table there)."""
    if f.service_id is None or f.later is not None:
        return f
    query = (
        select(R.appointment_id)
        .join(AppointmentService, AppointmentService.appointment_id == R.appointment_id)
        .where(
            AppointmentService.position > 0,
            AppointmentService.service_id == f.service_id,
            *in_period(replace(f, service_id=None), R.submitted_at, R.clinic_id),
        )
    )
    return replace(f, later=tuple(sorted(set(session.scalars(query)))))


def grouped(keys: list, values: list, f: SurveyFilter, *where):
    """SELECT keys, values … GROUP BY keys over the filter's responses: with several pieces,
    each piece grouped, then added up (the values are counts and sums)."""
    keys = [k.label(f"k{i}") for i, k in enumerate(keys)]
    values = [v.label(f"v{i}") for i, v in enumerate(values)]
    parts = [
        select(*keys, *values).where(*where, *piece).group_by(*keys)
        for piece in pieces(f, R.submitted_at, R.clinic_id)
    ]
    if len(parts) == 1:
        return parts[0]
    u = union_all(*parts).subquery()
    outer = [u.c[k.name] for k in keys]
    return select(*outer, *(func.sum(u.c[v.name]) for v in values)).group_by(*outer)


def apply_filter(query, f: SurveyFilter):
    return query.where(*in_period(f, R.submitted_at, R.clinic_id))


def _cube(
    session: Session, f: SurveyFilter
) -> list[tuple[int | None, int | None, int | None, Figures]]:
    """One SQL pass over ix_survey_responses_figures: the sums per (service key, provider,
    clinic) — at most a few hundred rows, which add up exactly to the sums of any coarser
    group (all figures are additive sums). The service key is minus the package's id for a
    visit booked as a package (its own group, not its first service's), else the service's
    id (a key in SQL: grouping by service and package apart sorts more groups, 32 against
    26 ms on a year of 120k responses)."""
    key = case((R.package_id.is_not(None), -R.package_id), else_=R.service_id)
    query = grouped([key, R.provider_id, R.clinic_id], list(_sums()), f)
    return [(c, p, s, _figures(values)) for s, p, c, *values in session.execute(query)]


EPOCH = date(1970, 1, 1)


def _zone_offset(tz: str, since: datetime, until: datetime):
    """A zone's UTC offset (seconds) at each response's moment in [since, until), in SQL: a
    CASE over the offset periods of the range (one more per DST change, found in Python)."""
    periods = offset_periods(tz, since, until)
    whens = [
        (R.submitted_at < following, literal_column(str(offset), Integer))
        for (_, offset), (following, _) in zip(periods, periods[1:], strict=False)
    ]
    last = literal_column(str(periods[-1][1]), Integer)
    return case(*whens, else_=last) if whens else last


def _local_daynum(dialect: str, f: SurveyFilter):
    """A response's local day as days since 1970, in SQL: its epoch seconds plus its zone's UTC
    offset, divided by a day — the same on SQLite and PostgreSQL. Its zone is its clinic's for
    a clinic of `own_days` (a CASE on the clinic, read once per row), otherwise the filter's."""
    seconds = epoch_seconds(R.submitted_at, dialect)
    if f.tz == "UTC" and not f.own_days:
        return seconds // DAY
    offset = _zone_offset(f.tz, *f.span)
    if f.own_days:
        own = {cid: _zone_offset(zone, low, high) for cid, zone, low, high in f.own_days}
        offset = case(own, value=R.clinic_id, else_=offset)
    return (seconds + offset) // DAY


def _daily(session: Session, f: SurveyFilter) -> list[tuple[date, Figures]]:
    """One SQL pass: the sums per local day of the filter's zone, from which weeks and months
    are added up."""
    query = grouped([_local_daynum(session.get_bind().dialect.name, f)], list(_sums()), f)
    return sorted(
        (EPOCH + timedelta(days=int(d)), _figures(values)) for d, *values in session.execute(query)
    )


def _total(figures) -> Figures:
    return sum(figures, Figures())


NPS_BUCKETS = ((9, 10), (7, 8), (0, 1, 2, 3, 4, 5, 6))  # promoters, passives, detractors
RATINGS = (1, 2, 3, 4, 5)


def _counts(f: SurveyFilter, conditions: list) -> list:
    """A count of the filter's responses per condition (None: all), one scalar subquery each
    (a sum of them with several pieces)."""
    ranges = pieces(f, R.submitted_at, R.clinic_id)
    return [
        sum_of(
            [
                select(func.count()).where(*([] if c is None else [c]), *piece).scalar_subquery()
                for piece in ranges
            ]
        )
        for c in conditions
    ]


def sum_of(counts: list):
    """One count, or the sum of the pieces' counts (SQL)."""
    total = counts[0]
    for count in counts[1:]:
        total = total + count
    return total


def _summary_counts(f: SurveyFilter):
    """The period's figures as plain counts, one scalar subquery each: all responses, each NPS
    bucket and each star rating. Every count is a range of a covering index (submitted_at /
    (nps, submitted_at, clinic_id) / (rating, submitted_at, clinic_id)) counted without
    evaluating anything per row (but in the few hours at the ends of the range where clinics'
    days differ); the sums of x and x² follow exactly from the counts per star (the CHECK
    constraints keep nps in 0–10 and rating in 1–5)."""
    return _counts(
        f, [None, *(R.nps.in_(b) for b in NPS_BUCKETS), *(R.rating == r for r in RATINGS)]
    )


def _summary(total, promoters, passives, detractors, *per_star) -> Figures:
    counts = [int(c) for c in per_star]
    return Figures(
        int(total),
        int(promoters) + int(passives) + int(detractors),
        int(promoters),
        int(passives),
        int(detractors),
        sum(counts),
        sum(r * c for r, c in zip(RATINGS, counts, strict=True)),
        sum(r * r * c for r, c in zip(RATINGS, counts, strict=True)),
        sum(c for r, c in zip(RATINGS, counts, strict=True) if r >= 4),
    )


def _overview_query(f: SurveyFilter):
    """All clinics: the figures as counts (above). One clinic: its responses are a single
    (clinic_id, submitted_at) range, summed in one pass, which beats counting every clinic's
    buckets and checking the clinic in each entry; so are one service's (the covering index
    of the figures holds the service, the counts' indexes do not) and one provider's (its range
    of ix_survey_responses_provider_figures, which holds what the figures read: no table)."""
    if f.clinic_id is None and f.service_id is None and f.provider_id is None:
        return select(*_summary_counts(f)), _summary
    return apply_filter(select(*_sums()), f), lambda *row: _figures(row)


# the first view's statements are built once with bound parameters: building a dozen
# subqueries costs more than running them


def _moment(name: str):
    return bindparam(name, type_=UTCDateTime())


def _statement_of(part: str, f: SurveyFilter):
    """The summary's, the funnel's or the answers' one-row statement, and what turns its row
    into figures."""
    if part == "funnel":
        return _funnel_query(f), _funnel
    if part == "answers":
        answers = [*(R.rating == r for r in RATINGS), *(R.nps == v for v in range(11))]
        return select(*_counts(f, answers)), lambda *row: [int(n) for n in row]
    return _overview_query(f)


@cache
def _statement(part: str, by_clinic: bool, own: int, by_provider: bool = False):
    """_statement_of with bound parameters (for `own` clinics of other zones)."""
    bound = SurveyFilter(
        _moment("since"),
        _moment("until"),
        bindparam("clinic") if by_clinic else None,
        own_days=tuple(
            (bindparam(f"c{i}"), "", _moment(f"s{i}"), _moment(f"u{i}")) for i in range(own)
        ),
        span=(_moment("low"), _moment("high")) if own else (_moment("since"), _moment("until")),
        core=(_moment("core_low"), _moment("core_high")),
        provider_id=bindparam("provider") if by_provider else None,
    )
    return _statement_of(part, bound)


def _run(session: Session, f: SurveyFilter, part: str):
    """One of _statement_of's statements run for `f`: built once with bound parameters, or,
    filtered by a service, built for it (its `later` written as numbers where they are few:
    SQLite tests those before a response's other conditions, a bound list after them)."""
    if f.service_id is not None:
        query, to_result = _statement_of(part, f)
        return to_result(*session.execute(query).one())
    by_provider = f.provider_id is not None
    query, to_result = _statement(part, f.clinic_id is not None, len(f.own_days), by_provider)
    params = {"since": f.since, "until": f.until}
    if f.own_days:
        params |= {
            "low": f.span[0],
            "high": f.span[1],
            "core_low": f.core[0],
            "core_high": f.core[1],
        }
    if f.clinic_id is not None:
        params["clinic"] = f.clinic_id
    if by_provider:
        params["provider"] = f.provider_id
    for i, (cid, _, since, until) in enumerate(f.own_days):
        params |= {f"c{i}": cid, f"s{i}": since, f"u{i}": until}
    return to_result(*session.execute(query, params).one())


def answer_counts(session: Session, f: SurveyFilter) -> tuple[list[int], list[int]]:
    """How many responses gave each star rating (1–5) and each 0–10 answer. All clinics: as
    counts, each a range of a covering index (as the summary's); one clinic: one pass over its
    responses, grouped by both (at most 6 × 12 rows), as are one service's or provider's."""
    if f.clinic_id is None and f.service_id is None and f.provider_id is None:
        counts = _run(session, f, "answers")
        return counts[:5], counts[5:]
    ratings, nps = [0] * 5, [0] * 11
    for rating, answer, n in session.execute(grouped([R.rating, R.nps], [func.count()], f)):
        if rating is not None:
            ratings[int(rating) - 1] += int(n)
        if answer is not None:
            nps[int(answer)] += int(n)
    return ratings, nps


def summary(session: Session, actor: Actor, f: SurveyFilter) -> Figures:
    ensure(actor, Permission.ANALYTICS_READ)
    return _run(session, with_service(session, f), "summary")


GROUPS = {"clinic": (0, Clinic), "provider": (1, Provider), "service": (2, Service)}


def _names(session: Session, model, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def _groups(session: Session, cube, group: str) -> pd.DataFrame:
    """One row per group of the cube; `dimension` is what its id is (the group, or "package"
    for a package's own row by service: the `responses_behind` dimension of its bar)."""
    position, model = GROUPS[group]
    sums: dict[int | None, Figures] = {}
    for row in cube:
        sums[row[position]] = sums.get(row[position], Figures()) + row[3]
    names = _names(session, model, [key for key in sums if key is not None and key > 0])
    packages = _names(session, Package, [-key for key in sums if key is not None and key < 0])
    records = []
    for key, fig in sums.items():
        low, high = fig.interval or (None, None)
        if key is not None and key < 0:
            name, key, dimension = PACKAGE + packages.get(-key, "(not recorded)"), -key, "package"
        else:
            name, dimension = names.get(key, "(not recorded)"), group
        records.append(
            {
                "id": key,
                "dimension": dimension,
                group: name,
                "n": fig.rating_n,
                "mean": fig.mean,
                "ci_low": low,
                "ci_high": high,
                "csat": fig.csat,
                "nps": fig.nps,
                "nps_n": fig.nps_n,
                "enough": fig.enough,
            }
        )
    columns = [
        "id",
        "dimension",
        group,
        "n",
        "mean",
        "ci_low",
        "ci_high",
        "csat",
        "nps",
        "nps_n",
        "enough",
    ]
    frame = pd.DataFrame(records, columns=columns).astype({"id": "Int64"})
    return frame.sort_values(["enough", "mean"], ascending=False, ignore_index=True)


def by_group(session: Session, actor: Actor, f: SurveyFilter, group: str) -> pd.DataFrame:
    """One row per provider, service or clinic (by service, each package booked its own row,
    "Package: name", dimension "package"): n, mean rating with its 95% interval, CSAT, NPS,
    and whether the group has at least MIN_N ratings."""
    ensure(actor, Permission.ANALYTICS_READ)
    if group not in GROUPS:
        raise ValidationError("Group by provider, service or clinic.")
    return _groups(session, _cube(session, with_service(session, f)), group)


def _period_start(day: date, period: str) -> date:
    return day - timedelta(days=day.weekday()) if period == "week" else day.replace(day=1)


def _trend(daily, period: str) -> pd.DataFrame:
    sums: dict[date, Figures] = {}
    for day, fig in daily:
        key = _period_start(day, period)
        sums[key] = sums.get(key, Figures()) + fig
    records = [
        {
            "period": pd.Timestamp(key),
            "responses": fig.responses,
            "nps": fig.nps,
            "csat": fig.csat,
            "mean": fig.mean,
            "nps_n": fig.nps_n,  # NPS's own n: the 0–10 answers
            "rating_n": fig.rating_n,  # CSAT's and the mean's: the ratings
        }
        for key, fig in sorted(sums.items())
    ]
    columns = ["period", "responses", "nps", "csat", "mean", "nps_n", "rating_n"]
    return pd.DataFrame(records, columns=columns)


def trend(session: Session, actor: Actor, f: SurveyFilter, period: str) -> pd.DataFrame:
    """Weekly (Monday-based) or monthly NPS, CSAT and mean rating, by local submission day
    (in the filter's zone)."""
    ensure(actor, Permission.ANALYTICS_READ)
    if period not in ("week", "month"):
        raise ValidationError("The trend period is week or month.")
    return _trend(_daily(session, with_service(session, f)), period)


@dataclass(frozen=True)
class Funnel:
    completed: int
    requested: int
    answered: int

    @property
    def request_rate(self) -> float | None:
        return 100 * self.requested / self.completed if self.completed else None

    @property
    def answer_rate(self) -> float | None:
        return 100 * self.answered / self.requested if self.requested else None


def _funnel_query(f: SurveyFilter):
    """Completed visits in the period per feedback status (none, pending, collected), one row.
    Each count is one scalar subquery, a single range of ix_appointments_feedback_day (status,
    feedback_status, start_at, clinic_id) counted without evaluating anything per row (but a
    service's: `later` holds the visits, see funnel). A provider's are counted in one pass
    over the provider's range of ix_appointments_provider_day (provider_id, start_at, status,
    feedback_status, clinic_id), each visit's state checked in the index (migration 0030):
    counted apart, each count read that range again."""
    a = Appointment
    visits = [
        a.status == AppointmentStatus.COMPLETED,  # only visits complete: no out-of-office block
        *in_period(f, a.start_at, a.clinic_id, (a.service_id, a.id, a.id), a.provider_id),
    ]
    states = (FeedbackStatus.NONE, FeedbackStatus.PENDING, FeedbackStatus.COLLECTED)
    if f.provider_id is not None:
        each = [func.count(case((a.feedback_status == s, 1))) for s in states]
        return select(*each).where(*visits)
    counts = [
        select(func.count()).where(*visits, a.feedback_status == s).scalar_subquery()
        for s in states
    ]
    return select(*counts)


def _funnel(none: int, pending: int, collected: int) -> Funnel:
    return Funnel(
        int(none) + int(pending) + int(collected), int(pending) + int(collected), int(collected)
    )


def funnel(session: Session, actor: Actor, f: SurveyFilter) -> Funnel:
    """Visits in the period (by start time) that were completed → asked for feedback →
    answered. Imported responses without an appointment are not part of it. Filtered by a
    service, the visits holding it: those holding it after their first service read once; by
    a provider, that provider's visits."""
    ensure(actor, Permission.ANALYTICS_READ)
    if f.service_id is not None:
        a = Appointment
        query = (
            select(AppointmentService.appointment_id)
            .join(a, a.id == AppointmentService.appointment_id)
            .where(
                AppointmentService.position > 0,
                AppointmentService.service_id == f.service_id,
                a.status == AppointmentStatus.COMPLETED,
                *in_period(
                    replace(f, service_id=None), a.start_at, a.clinic_id, provider=a.provider_id
                ),
            )
        )
        f = replace(f, later=tuple(sorted(set(session.scalars(query)))))
    return _run(session, f, "funnel")


def _feed_columns():
    return (
        R.id,
        R.submitted_at,
        R.appointment_id,
        Clinic.name.label("clinic"),
        Clinic.timezone,
        Clinic.locale,
        Provider.name.label("provider"),
        Service.name.label("service"),
        Package.name.label("package"),
        R.nps,
        R.rating,
        R.comment,
    )


def feed_frame(session: Session, rows) -> pd.DataFrame:
    """Responses as rows; submitted in their clinic's time and locale (an imported response
    without a clinic in the practice's)."""
    practice = clinic_format(session)
    records = [
        {
            "id": r.id,
            "submitted": format_moment(
                r.submitted_at,
                r.timezone or practice.timezone,
                r.locale or practice.locale,
                weekday=False,
            ),
            "appointment_id": r.appointment_id,
            "clinic": r.clinic or "",
            "provider": r.provider or "",
            "service": service_label(r.service, r.package),
            "nps": r.nps,
            "rating": r.rating,
            "comment": r.comment,
        }
        for r in rows
    ]
    columns = [
        "id",
        "submitted",
        "appointment_id",
        "clinic",
        "provider",
        "service",
        "nps",
        "rating",
        "comment",
    ]
    return pd.DataFrame(records, columns=columns).astype({"appointment_id": "Int64"})


def service_label(service: str | None, package: str | None) -> str:
    """What a response's visit was booked as: its package ("Package: name", as its figures
    count it by service), else its service."""
    return PACKAGE + package if package else service or ""


def feed_query(f: SurveyFilter | None):
    query = (
        select(*_feed_columns())
        .outerjoin(Clinic, Clinic.id == R.clinic_id)
        .outerjoin(Provider, Provider.id == R.provider_id)
        .outerjoin(Service, Service.id == R.service_id)
        .outerjoin(Package, Package.id == R.package_id)
    )
    return apply_filter(query, f) if f else query


def recent_detractors(
    session: Session,
    actor: Actor,
    clinic_id: int | None = None,
    *,
    days: int = DETRACTOR_DAYS,
    now: datetime | None = None,
    limit: int = 100,
    service_id: int | None = None,
    provider_id: int | None = None,
) -> pd.DataFrame:
    """Responses of the last `days` days with a 0–6 recommendation, newest first (of visits
    holding `service_id`, recording `provider_id`, when given)."""
    ensure(actor, Permission.ANALYTICS_READ)
    now = now or utcnow()
    since, until = now - timedelta(days=days), now + timedelta(seconds=1)
    f = SurveyFilter(since, until, clinic_id, service_id=service_id, provider_id=provider_id)
    query = feed_query(with_service(session, f))
    query = query.where(R.nps <= 6).order_by(R.submitted_at.desc(), R.id.desc()).limit(limit)
    return feed_frame(session, session.execute(query))


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def comments(
    session: Session,
    actor: Actor,
    f: SurveyFilter,
    search: str = "",
    page: int = 0,
    page_size: int = COMMENTS_PAGE,
) -> tuple[pd.DataFrame, bool]:
    """Non-empty comments, newest first, containing `search` (case-insensitive, taken
    literally), one page at a time, and whether there is a next page. (No total: counting
    every match would read the whole period; a page reads only as far as it needs.)"""
    ensure(actor, Permission.ANALYTICS_READ)
    condition = R.comment != ""
    if search.strip():
        condition = condition & R.comment.ilike(_like(search.strip()), escape="\\")
    query = feed_query(with_service(session, f)).where(condition)
    query = query.order_by(R.submitted_at.desc(), R.id.desc())
    rows = list(session.execute(query.limit(page_size + 1).offset(max(0, page) * page_size)))
    return feed_frame(session, rows[:page_size]), len(rows) > page_size


@dataclass(frozen=True)
class Groups:
    providers: pd.DataFrame
    services: pd.DataFrame
    clinics: pd.DataFrame


@dataclass(frozen=True)
class Trends:
    weekly: pd.DataFrame
    monthly: pd.DataFrame


def get_groups(session: Session, actor: Actor, f: SurveyFilter) -> Groups:
    ensure(actor, Permission.ANALYTICS_READ)
    cube = _cube(session, with_service(session, f))
    return Groups(*(_groups(session, cube, g) for g in ("provider", "service", "clinic")))


def get_trends(session: Session, actor: Actor, f: SurveyFilter) -> Trends:
    ensure(actor, Permission.ANALYTICS_READ)
    daily = _daily(session, with_service(session, f))
    return Trends(_trend(daily, "week"), _trend(daily, "month"))


@dataclass(frozen=True)
class Dashboard:
    summary: Figures
    providers: pd.DataFrame
    services: pd.DataFrame
    clinics: pd.DataFrame
    weekly: pd.DataFrame
    monthly: pd.DataFrame
    funnel: Funnel
    detractors: pd.DataFrame


def get_dashboard(
    session: Session, actor: Actor, f: SurveyFilter, *, now: datetime | None = None
) -> Dashboard:
    """Every figure of the page except the comment feed, in one read (two grouped passes)."""
    ensure(actor, Permission.ANALYTICS_READ)
    f = with_service(session, f)
    cube, daily = _cube(session, f), _daily(session, f)
    return Dashboard(
        _total(row[3] for row in cube),
        _groups(session, cube, "provider"),
        _groups(session, cube, "service"),
        _groups(session, cube, "clinic"),
        _trend(daily, "week"),
        _trend(daily, "month"),
        funnel(session, actor, f),
        recent_detractors(
            session,
            actor,
            f.clinic_id,
            now=now,
            service_id=f.service_id,
            provider_id=f.provider_id,
        ),
    )
