"""The background jobs' health for owners and managers: a one-line banner on every staff page
once a job has failed for BANNER_AFTER, and the list on the Practice set-up page. One cached
read, shared by every session of a role (no page waits on the database for it)."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from core.kernel.authz import Actor, Permission
from core.kernel.clock import utcnow
from core.kernel.errors import DomainError
from core.kernel.money import clinic_time
from core.practice import backups
from core.practice.job_health import BANNER_AFTER, FailingJob, failing_jobs
from ui.caches import cached
from ui.context import read, settings
from ui.locale import display_format
from ui.text import escape

PRACTICE_PAGE = "app_pages/practice.py"


# keyed by role, not by user: what a role may see here does not depend on who holds it. A
# job's health is written by the jobs loop, not by a page's action: the ttl alone refreshes it.
@cached("setup", ttl=30, max_entries=5)
def _failing(role) -> list[FailingJob]:
    return read(failing_jobs, Actor(user_id=None, name=f"any {role.value}", role=role))


def failing_now(actor: Actor | None) -> list[FailingJob]:
    """The failing jobs for an owner or a manager; nothing for anyone else."""
    if actor is None or not actor.can(Permission.PRACTICE_MANAGE):
        return []
    try:
        return _failing(actor.role)
    except DomainError:  # the page itself says what is wrong (an unreachable database)
        return []


def banner(actor: Actor | None) -> None:
    """One line on every staff page while a job has failed for longer than BANNER_AFTER."""
    late = [job for job in failing_now(actor) if job.since < utcnow() - BANNER_AFTER]
    if not late:
        return
    effects = "; ".join(dict.fromkeys(job.effect for job in late))
    st.warning(
        f"Background work has been failing for more than "
        f"{int(BANNER_AFTER.total_seconds() // 60)} minutes: {escape(effects)}.",
        icon=":material/warning:",
    )
    st.page_link(PRACTICE_PAGE, label="See what is failing on Practice set-up", icon="⚠️")


def failing_list(actor: Actor | None) -> None:
    """The Practice set-up page's warning: each failing job, since when (in the practice's
    zone and locale), what it means for the practice and its last error, shown as text."""
    failing = failing_now(actor)
    if not failing:
        return
    fmt = display_format()
    lines = []
    for job in failing:
        times = "once" if job.failures == 1 else f"{fmt.number(job.failures)} times"
        lines.append(
            f"- **{escape(job.label)}**: {escape(job.effect)}. Failing since "
            f"{clinic_time(fmt, job.since, zone=True)}, {times}, the last at "
            f"{clinic_time(fmt, job.last_failed_at, zone=True)}. Last error: {escape(job.error)}"
        )
    st.warning(
        "Background work is failing; the server log has the details.\n\n" + "\n".join(lines),
        icon=":material/warning:",
    )


# written by the jobs loop or the command line, not by a page: the ttl alone refreshes it
@cached("setup", ttl=60, max_entries=5)
def _last_backup(role) -> backups.LastBackup | None:
    return read(backups.last_backup, Actor(user_id=None, name=f"any {role.value}", role=role))


@cached("setup", ttl=60, max_entries=5)
def _watched_since(role) -> datetime | None:
    return read(backups.watched_since, Actor(user_id=None, name=f"any {role.value}", role=role))


def backup_line(actor: Actor | None) -> None:
    """The Practice set-up page's line for the owner: the last backup's time and file, or a
    warning when none has been made for backups.WARN_AFTER."""
    if actor is None or not actor.can(backups.PERMISSION):
        return
    try:
        last = _last_backup(actor.role)
    except DomainError:  # the page itself says what is wrong (an unreachable database)
        return
    fmt = display_format()
    if last is not None:
        where = f" on {escape(last.host)}" if last.host else ""
        said = f"the last, {clinic_time(fmt, last.at, zone=True)}: {escape(last.file)}{where}"
    if last is not None and last.at >= utcnow() - backups.WARN_AFTER:
        st.info(f"Backups: {said}.", icon=":material/backup:")
        return
    since = _watched_since(actor.role) if settings().nightly_backup else None
    if last is None and since is not None and since >= utcnow() - backups.WARN_AFTER:
        night = f"{backups.NIGHT.start:02d}:00–{backups.NIGHT.stop:02d}:00"
        st.info(  # a practice set up today: no night has come for its first backup yet
            f"Backups: none yet; the nightly backup makes the first tonight ({night} at the "
            "first clinic), or make one now with `python -m core.cli backup`.",
            icon=":material/backup:",
        )
        return
    nightly = (
        "The nightly backup is off (CLINICDESK_NIGHTLY_BACKUP=off)"
        if not settings().nightly_backup
        else "The nightly backup has not run (see the failing jobs above, if any)"
    )
    days = int(backups.WARN_AFTER.total_seconds() // 86400)
    st.warning(
        f"No backup of the database in the last {days} days"
        + (f" ({said})" if last is not None else "")
        + f". {nightly}; make one now with `python -m core.cli backup`.",
        icon=":material/warning:",
    )
