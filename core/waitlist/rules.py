"""The practice's waitlist rules as data (one `settings` row): how offers go out and to whom."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta

from sqlalchemy.orm import Session

from core.kernel import audit
from core.kernel.authz import Actor, Permission, ensure
from core.kernel.clock import in_quiet, to_local
from core.kernel.errors import ValidationError
from core.kernel.locks import setting_row
from core.messaging.quiet import (
    OFFER_QUIET_END,
    OFFER_QUIET_START,
    WAITLIST_RULES,
    offer_quiet_hours,
)
from db.models import OfferMode, Setting

KEY = WAITLIST_RULES  # the settings row; its quiet hours are read as the sender reads them


Mode = OfferMode  # one at a time with a hold, or first to accept; each offer keeps its own


class Ranking(enum.StrEnum):
    FIRST_COME = "first_come"  # longest waiting first
    SOONEST_NEED = "soonest_need"  # the entry whose date range ends first


MODE_LABELS = {
    Mode.ONE_AT_A_TIME: "One at a time, with a hold",
    Mode.FIRST_TO_ACCEPT: "Several at once, first to accept wins",
}
RANKING_LABELS = {
    Ranking.FIRST_COME: "First come, first served",
    Ranking.SOONEST_NEED: "Soonest need (date range ends first)",
}


@dataclass(frozen=True)
class Rules:
    mode: Mode = Mode.ONE_AT_A_TIME
    ranking: Ranking = Ranking.FIRST_COME
    hold_minutes: int = 30  # real minutes, also across a clock change (core.kernel.clock)
    batch: int = 3
    min_notice_minutes: int = 120  # no offer for a slot starting sooner than this (real time)
    quiet_start: time = OFFER_QUIET_START  # clinic-local: no offer is sent from here ...
    quiet_end: time = OFFER_QUIET_END  # ... to here

    def quiet(self, moment: datetime, tz: str) -> bool:
        local = to_local(moment, tz).time().replace(tzinfo=None)
        return in_quiet(local, self.quiet_start, self.quiet_end)

    @property
    def hold(self) -> timedelta:
        return timedelta(minutes=self.hold_minutes)

    @property
    def min_notice(self) -> timedelta:
        return timedelta(minutes=self.min_notice_minutes)


def get_rules(session: Session) -> Rules:
    row = session.get(Setting, KEY)
    value = row.value if row is not None and isinstance(row.value, dict) else {}
    quiet_start, quiet_end = offer_quiet_hours(value)  # as the sender holds offers
    try:
        return Rules(
            mode=Mode(value.get("mode", Mode.ONE_AT_A_TIME)),
            ranking=Ranking(value.get("ranking", Ranking.FIRST_COME)),
            hold_minutes=int(value.get("hold_minutes", 30)),
            batch=int(value.get("batch", 3)),
            min_notice_minutes=int(value.get("min_notice_minutes", 120)),
            quiet_start=quiet_start,
            quiet_end=quiet_end,
        )
    except (ValueError, TypeError):
        return Rules(quiet_start=quiet_start, quiet_end=quiet_end)


def set_rules(session: Session, actor: Actor, rules: Rules) -> Rules:
    ensure(actor, Permission.WAITLIST_OFFER)
    if not 5 <= rules.hold_minutes <= 24 * 60:
        raise ValidationError("Hold an offer between 5 minutes and 24 hours.")
    if not 1 <= rules.batch <= 20:
        raise ValidationError("Offer a slot to between 1 and 20 patients at once.")
    if not 0 <= rules.min_notice_minutes <= 7 * 24 * 60:
        raise ValidationError("Set a minimum notice between 0 minutes and 7 days.")
    value = asdict(rules)
    value.update(
        mode=rules.mode.value,
        ranking=rules.ranking.value,
        quiet_start=rules.quiet_start.strftime("%H:%M"),
        quiet_end=rules.quiet_end.strftime("%H:%M"),
    )
    row = setting_row(session, KEY)
    row.value, row.updated_by_user_id = value, actor.user_id
    session.add(row)
    audit.record(session, actor, "waitlist_rules_set", "setting", None, details=value)
    return rules
