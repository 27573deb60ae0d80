"""The survey analytics page in AppTest on a copy of the demo database: the figures it shows are
the core's, every section runs, the comment search, the audited export, roles and settings."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, time, timedelta

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import func, select

from core.analytics import breakdowns as bd
from core.analytics import surveys as sa
from core.kernel.accounts import actor_of
from core.kernel.clock import local_to_utc, local_today
from core.kernel.config import load_settings
from core.kernel.money import clinic_format
from core.startup import open_database
from db.models import AuditEvent, Clinic, Setting, SurveyResponse, User
from db.types import utcnow
from tests.pages.conftest import chart_click, clear_skin, every_clinic_speaks
from ui.survey_view import every_week

PAGE = "app_pages/survey_analytics.py"


def database(url):
    return open_database(load_settings({"DATABASE_URL": url, "CLINICDESK_SECRET_KEY": "k" * 40}))


def page_filter(session, first, last, clinic_id=None):
    """The page's filter: "All clinics" on the practice's days (not UTC's), each clinic's
    responses on its own clinic's days."""
    practice = clinic_format(session, clinic_id).timezone
    zones = session.execute(select(Clinic.id, Clinic.timezone)).all()
    return sa.filter_for_days(first, last, practice, clinic_id, [tuple(z) for z in zones])


def expected(url):
    db = database(url)
    with db.read() as session:
        owner = session.scalar(select(User).where(User.username == "owner"))
        today = date.today()
        f = page_filter(session, today - timedelta(days=89), today)
        board = sa.get_dashboard(session, actor_of(owner), f)
    db.dispose()
    return board


def summary_of(url, first, last):
    db = database(url)
    with db.read() as session:
        owner = session.scalar(select(User).where(User.username == "owner"))
        figures = sa.summary(session, actor_of(owner), page_filter(session, first, last))
    db.dispose()
    return figures


def clinic_format_of(url):
    db = database(url)
    with db.read() as session:
        fmt = clinic_format(session)
    db.dispose()
    return fmt


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_figures_follow_the_clinics_locale(app_as, app_db):
    every_clinic_speaks(app_db, "pt-BR")
    at = app_as("owner", PAGE)
    s = expected(app_db).summary
    assert metric(at, "Average rating") == f"{s.mean:.2f} / 5".replace(".", ",")  # 4,35 / 5
    weekly = json.loads(at.get("echarts_chart")[0].proto.spec)
    assert weekly["title"]["text"].endswith(f"n = {s.responses:,} responses".replace(",", "."))


def recent_detractor(url) -> None:
    """A 0–6 answer an hour ago, beside the demo's latest response: whether the demo's own
    answers hold one in the last seven days depends on the hour it was seeded (at 03:25 on a
    Monday none did)."""
    db = database(url)
    with db.write() as session:
        latest = session.scalars(
            select(SurveyResponse).order_by(SurveyResponse.submitted_at.desc()).limit(1)
        ).one()
        session.add(
            SurveyResponse(
                submitted_at=utcnow() - timedelta(hours=1),
                nps=3,
                rating=2,
                clinic_id=latest.clinic_id,
                provider_id=latest.provider_id,
                service_id=latest.service_id,
                comment="Waited too long",
            )
        )
    db.dispose()


def test_owner_sees_the_core_figures(app_as, app_db):
    recent_detractor(app_db)
    at = app_as("owner", PAGE)
    assert not at.exception and not at.error, [e.value for e in at.exception]
    board = expected(app_db)
    s = board.summary
    assert s.responses > 100  # the demo has a few hundred in the last 90 days
    assert metric(at, "Responses") == f"{s.responses:,}"
    assert metric(at, "NPS") == f"{s.nps:+.0f}"
    assert metric(at, "CSAT") == f"{s.csat:.0f}%"
    assert metric(at, "Average rating") == f"{s.mean:.2f} / 5"
    assert metric(at, "Promoters (9–10)") == f"{s.promoters:,}"
    assert metric(at, "Detractors (0–6)") == f"{s.detractors:,}"
    assert "NPS** = % promoters" in at.expander[0].markdown[0].value
    assert "is its own bar (*Package: …*)" in at.expander[0].markdown[0].value
    assert "Completed visits" not in [m.label for m in at.metric]  # the funnel: one click away
    at.segmented_control(key="survey_analytics_section").set_value("Response funnel").run()
    assert metric(at, "Completed visits") == f"{board.funnel.completed:,}"
    assert metric(at, "Answered") == f"{board.funnel.answered:,}"
    assert len(board.detractors) > 0
    at.segmented_control(key="survey_analytics_section").set_value("Detractors").run()
    links = next(d.value for d in at.dataframe if "visit" in d.value.columns).visit
    # a response of no visit (as the one added above, or an imported one) links nowhere
    assert list(links) == [
        f"/appointment?id={a}" if pd.notna(a) else "" for a in board.detractors.appointment_id
    ]


def test_the_dashboard_opens_on_its_charts_each_with_its_n(app_as, app_db):
    at = app_as("manager", PAGE)
    assert not at.exception and not at.error
    s = expected(app_db).summary
    titles = [json.loads(c.proto.spec)["title"]["text"] for c in at.get("echarts_chart")]
    assert len(titles) == 5 and all(" · n = " in t for t in titles), titles
    assert titles[0] == f"NPS and CSAT by week (week starting) · n = {s.responses:,} responses"
    assert titles[1] == f"Overall rating · n = {s.rating_n:,} ratings"
    assert titles[2] == f"Would recommend (0–10) · n = {s.nps_n:,} answers"
    assert titles[3].startswith("NPS and CSAT by provider")
    assert titles[4].startswith("NPS and CSAT by service")
    # deltas against the previous period, named, with that period's n each, and the latest
    # comments as plain text
    fmt = clinic_format_of(app_db)
    first = local_today(fmt.timezone) - timedelta(days=89)  # the page's first day by default
    start, end = first - timedelta(days=90), first - timedelta(days=1)
    p = summary_of(app_db, start, end)
    assert p.responses > 0  # the demo has answers in the 90 days before too
    deltas = {m.label: m.proto.delta for m in at.metric}
    for label, unit, n in (
        ("Responses", "", p.responses),
        ("NPS", " points", p.nps_n),
        ("CSAT", " pp", p.rating_n),
        ("Average rating", "", p.rating_n),
    ):
        assert deltas[label].endswith(f"{unit} vs previous period (n={n:,})"), deltas[label]
    said = f"Changes compare with the 90 days before ({fmt.day(start)} – {fmt.day(end)});"
    assert [c.value for c in at.caption if c.value.startswith(said)]
    latest = next(d.value for d in at.dataframe if "comment" in d.value.columns)
    assert 0 < len(latest) <= sa.COMMENTS_PAGE and (latest.comment != "").all()


def test_a_click_on_a_star_lists_the_responses_behind_it(app_as, app_db):
    at = app_as("owner", PAGE)
    at.session_state["survey_chart_ratings"] = chart_click(0, 4)  # the 5 ★ bar
    at.run()
    assert not at.exception, at.exception
    assert "Responses behind 5 ★ ratings" in [h.value for h in at.subheader]
    rows = next(d.value for d in at.dataframe if "comment" in d.value.columns)  # the first
    assert len(rows) > 0 and set(rows.rating) == {5}
    fives = expected_distribution(app_db).ratings[4]  # the bar's n
    shown = "" if fives == len(rows) else f"; the latest {len(rows):,} shown"
    assert f"{fives:,} responses{shown}" in [c.value for c in at.caption]


def expected_distribution(url):
    db = database(url)
    with db.read() as session:
        owner = session.scalar(select(User).where(User.username == "owner"))
        today = date.today()
        found = bd.distribution(
            session, actor_of(owner), page_filter(session, today - timedelta(days=89), today)
        )
    db.dispose()
    return found


def test_imported_2016_responses_can_be_chosen(app_as):
    at = app_as("owner", PAGE)
    picker = at.date_input(key="survey_analytics_days")
    assert picker.min <= date(2016, 1, 1)  # Streamlit's default would stop ten years back
    picker.set_value((date(2016, 1, 4), date(2016, 12, 30)))
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error
    assert at.date_input(key="survey_analytics_days").value == (
        date(2016, 1, 4),
        date(2016, 12, 30),
    )
    assert at.metric[0].value == "0"  # the demo data starts later


def test_every_section_runs_and_comments_are_searchable(app_as):
    at = app_as("manager", PAGE)
    for section in ("Detractors", "By group", "Trends", "Comments"):
        at.segmented_control(key="survey_analytics_section").set_value(section).run()
        assert not at.exception and not at.error, (section, [e.value for e in at.exception])
    at.text_input(key="survey_analytics_search").input("parking").run()
    comments = [d.value for d in at.dataframe if "comment" in d.value.columns][-1]
    assert len(comments) > 0 and comments.comment.str.contains("Parking").all()
    at.text_input(key="survey_analytics_search").input("zzz-no-such-comment").run()
    assert "No comments match." in [c.value for c in at.caption]


def test_groups_below_the_minimum_are_hidden_until_asked(app_as):
    at = app_as("owner", PAGE)
    at.segmented_control(key="survey_analytics_section").set_value("By group").run()
    providers = next(d.value for d in at.dataframe if "nps_n" in d.value.columns)
    assert len(providers) > 0 and (providers.n >= sa.MIN_N).all()
    at.toggle(key="survey_analytics_small").set_value(True).run()
    assert not at.exception


def test_export_is_audited_and_offered_for_download(app_as, app_db):
    at = app_as("owner", PAGE)
    at.button(key="survey_analytics_export").click().run()
    assert not at.exception and not at.error
    db = database(app_db)
    with db.read() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "export"))
        assert event.entity == "survey_responses" and event.details["rows"] > 100
    db.dispose()


def test_owner_saves_survey_settings(app_as, app_db):
    at = app_as("owner", PAGE)
    at.toggle(key="survey_analytics_settings").set_value(True).run()
    at.toggle(key="survey_analytics_auto").set_value(False)
    at.number_input(key="survey_analytics_delay").set_value(6)
    at.text_area(key="survey_analytics_questions").input("Courtesy of the staff\nParking")
    at.button(
        key="FormSubmitter:survey_analytics_survey_settings-Save survey settings"
    ).click().run()
    assert not at.exception and not at.error
    db = database(app_db)
    with db.read() as session:
        assert session.get(Setting, "feedback_auto").value == {"value": False}
        assert session.get(Setting, "feedback_delay_hours").value == {"value": 6}
        questions = session.get(Setting, "survey_questions").value["value"]
        assert questions == [
            {"key": "courtesy", "label": "Courtesy of the staff"},
            {"key": "parking", "label": "Parking"},
        ]
    db.dispose()


def test_manager_has_no_settings_and_staff_no_page(app_as):
    manager = app_as("manager", PAGE)
    assert not manager.exception
    assert not [t for t in manager.toggle if t.key == "survey_analytics_settings"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app_as("staff", PAGE)  # not registered for staff (and core refuses them anyway)


def test_a_range_with_no_responses_shows_one_message_not_empty_charts(app_as):
    at = app_as("owner", PAGE)
    at.date_input(key="survey_analytics_days").set_value((date(2016, 1, 4), date(2016, 1, 10)))
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error
    assert len(at.get("echarts_chart")) == 0
    assert "Latest comments" not in [h.value for h in at.subheader]
    assert len(at.info) == 1
    message = at.info[0].value
    assert message.startswith("No survey responses were submitted between")
    assert "appear here once patients answer" in message
    assert metric(at, "Responses") == "0"  # the key figures stay
    today = date.today()
    at.date_input(key="survey_analytics_days").set_value((today - timedelta(days=89), today))
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert len(at.get("echarts_chart")) == 5 and not at.info
    assert "Latest comments" in [h.value for h in at.subheader]


def test_the_response_tables_have_headings(app_as, app_db):
    recent_detractor(app_db)
    at = app_as("owner", PAGE)
    latest = next(d for d in at.dataframe if "comment" in d.value.columns)
    headings = {
        name: config.get("label")
        for name, config in json.loads(latest.proto.columns).items()
        if name in ("submitted", "clinic", "provider", "nps", "rating")
    }
    assert headings == {
        "submitted": "Submitted",
        "clinic": "Clinic",
        "provider": "Provider",
        "nps": "Recommend",
        "rating": "Rating",
    }, headings
    # the detractors' and the groups' tables the same way
    at.segmented_control(key="survey_analytics_section").set_value("Detractors").run()
    table = next(d for d in at.dataframe if "visit" in d.value.columns)
    labels = {n: c.get("label") for n, c in json.loads(table.proto.columns).items()}
    assert labels["submitted"] == "Submitted" and labels["provider"] == "Provider"
    at.segmented_control(key="survey_analytics_section").set_value("By group").run()
    table = next(d for d in at.dataframe if "nps_n" in d.value.columns)
    labels = {n: c.get("label") for n, c in json.loads(table.proto.columns).items()}
    assert labels["provider"] == "Provider" and labels["n"] == "Ratings"


def test_all_clinics_take_each_response_on_its_own_clinics_day(app_as, app_db):
    """A New York response at 22:00 EDT on 31 March 2016 is 1 April in London (the practice's
    zone): a range ending on 31 March counts it under All clinics as under New York, and All
    clinics is the sum of the clinics."""
    db = database(app_db)
    with db.write() as session:
        ny = session.scalar(select(Clinic).where(Clinic.timezone == "America/New_York"))
        assert ny is not None and clinic_format(session).timezone == "Europe/London"
        session.add(
            SurveyResponse(
                submitted_at=local_to_utc(date(2016, 3, 31), time(22), ny.timezone),
                nps=10,
                rating=5,
                clinic_id=ny.id,
                comment="Evening visit in New York",
            )
        )
        clinics = session.execute(select(Clinic.id, Clinic.name)).all()
        ny_id = ny.id
    db.dispose()
    at = app_as("owner", PAGE)
    at.date_input(key="survey_analytics_days").set_value((date(2016, 3, 25), date(2016, 3, 31)))
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error
    assert metric(at, "Responses") == "1"  # before: 0, the response was London's 1 April
    latest = next(d.value for d in at.dataframe if "comment" in d.value.columns)
    assert list(latest.comment) == ["Evening visit in New York"]
    assert list(latest.submitted)[0].startswith("Mar 31, 2016")  # dated 31 March, as it is counted
    counted = {}
    for clinic_id, _ in clinics:
        at.selectbox(key="survey_analytics_clinic").set_value(clinic_id)
        at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
        counted[clinic_id] = int(metric(at, "Responses"))
    assert counted == {cid: int(cid == ny_id) for cid, _ in clinics}


def test_nps_and_csat_each_show_their_own_n(app_as, app_db):
    """Star-only responses (as imported ones are) count in CSAT but not in NPS: each line and
    bar's tooltip n is its own figure's, the 0–10 answers for NPS and the ratings for CSAT
    (before: the responses for both by week, the ratings for both by provider)."""
    db = database(app_db)
    with db.write() as session:
        latest = session.scalars(
            select(SurveyResponse).order_by(SurveyResponse.submitted_at.desc()).limit(1)
        ).one()
        for minutes in range(1, 4):
            session.add(
                SurveyResponse(
                    submitted_at=latest.submitted_at - timedelta(minutes=minutes),
                    rating=4,
                    clinic_id=latest.clinic_id,
                    provider_id=latest.provider_id,
                    service_id=latest.service_id,
                    comment="",
                )
            )
    db.dispose()
    at = app_as("owner", PAGE)
    assert not at.exception and not at.error
    board = expected(app_db)
    today = date.today()
    # every week of the range is drawn, one without a response too (n = 0: on a Monday the
    # new week has none yet)
    weeks = every_week(board.weekly, today - timedelta(days=89), today)
    charts = {c.proto.id: json.loads(c.proto.spec) for c in at.get("echarts_chart")}

    def ns(key):
        spec = next(s for k, s in charts.items() if key in k)
        return {
            s["name"]: [int(item[4].replace(",", "")) for item in s["data"]] for s in spec["series"]
        }

    weekly = ns("survey_chart_weekly")
    assert weekly["NPS"] == list(weeks.nps_n)
    assert weekly["CSAT %"] == list(weeks.rating_n)
    latest = board.weekly.iloc[-1]  # the last week with responses: the star-only ones' week
    assert latest.nps_n < latest.rating_n
    shown = board.providers[board.providers.enough.astype(bool)].head(15)
    providers = ns("survey_chart_provider")
    assert providers["NPS"] == list(shown.nps_n) and providers["CSAT %"] == list(shown.n)
    assert providers["NPS"] != providers["CSAT %"]


def test_the_list_behind_a_bar_goes_when_the_filter_changes(app_as):
    """The responses listed are those of the bar clicked under the filter it was clicked under:
    after another clinic is chosen they are not left under that clinic's charts."""
    at = app_as("owner", PAGE)
    at.session_state["survey_chart_ratings"] = chart_click(0, 4)  # 5 ★
    at.run()
    assert "Responses behind 5 ★ ratings" in [h.value for h in at.subheader]
    at.selectbox(key="survey_analytics_clinic").select_index(1)
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error
    assert not [h.value for h in at.subheader if h.value.startswith("Responses behind")]


def test_weeks_without_a_response_stay_on_the_weekly_line(app_as, app_db):
    """Three quiet weeks before the first response are on the line, empty with n = 0 (before:
    left out, one point for four weeks)."""
    db = database(app_db)
    with db.read() as session:
        first = session.scalar(select(func.min(SurveyResponse.submitted_at)))
    db.dispose()
    monday = first.date() - timedelta(days=first.date().weekday())
    at = app_as("owner", PAGE)
    days = (monday - timedelta(days=21), monday + timedelta(days=6))
    at.date_input(key="survey_analytics_days").set_value(days)
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error
    weekly = json.loads(at.get("echarts_chart")[0].proto.spec)
    assert len(weekly["xAxis"]["data"]) == 4, weekly["xAxis"]["data"]
    nps = next(s for s in weekly["series"] if s["name"] == "NPS")["data"]
    assert [item[4] for item in nps[:3]] == ["0"] * 3 and [i[1] for i in nps[:3]] == [None] * 3
    assert nps[3][4] != "0"


def test_the_trends_weekly_chart_keeps_the_quiet_weeks_too(app_as, app_db):
    """The Trends section's weekly chart, as the dashboard's: the three quiet weeks before the
    first response are on it with 0 responses (before: left out, four weeks drawn as one)."""
    db = database(app_db)
    with db.read() as session:
        first = session.scalar(select(func.min(SurveyResponse.submitted_at)))
    db.dispose()
    monday = first.date() - timedelta(days=first.date().weekday())
    at = app_as("owner", PAGE)
    at.date_input(key="survey_analytics_days").set_value(
        (monday - timedelta(days=21), monday + timedelta(days=6))
    )
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    at.segmented_control(key="survey_analytics_section").set_value("Trends").run()
    assert not at.exception and not at.error
    weekly = next(c for c in at.get("vega_lite_chart") if "Weekly" in c.proto.spec)
    assert json.loads(weekly.proto.spec)["title"].startswith("Weekly")
    frame = pa.ipc.open_stream(weekly.proto.data.data).read_all().to_pandas()
    assert len(frame) == 4 and list(frame.responses)[:3] == [0, 0, 0], frame


def _answers(url, day: date, count: int) -> None:
    """`count` responses at the first clinic at noon on its `day`, NPS 10 and 5 stars."""
    db = database(url)
    with db.write() as session:
        clinic_id, tz = session.execute(
            select(Clinic.id, Clinic.timezone).order_by(Clinic.id).limit(1)
        ).one()
        session.add_all(
            SurveyResponse(
                clinic_id=clinic_id,
                submitted_at=local_to_utc(day, time(12), tz),
                nps=10,
                rating=5,
            )
            for _ in range(count)
        )
    db.dispose()


def test_changes_are_shown_only_against_enough_answers_before(app_as, app_db):
    """As on Cancellations: nothing answered in the period before, no change (and the caption
    says so), not "+3 vs previous period (n=0)"; fewer than 10 answers (either side), NPS,
    CSAT and the average are not compared (before: "+100 points" over 2 answers before)."""
    first = date(2001, 1, 8)  # a Monday; the week before has two answers, the one before none
    _answers(app_db, first - timedelta(days=3), 1)
    _answers(app_db, first - timedelta(days=6), 1)
    _answers(app_db, first + timedelta(days=1), 12)
    db = database(app_db)
    with db.write() as session:  # the two before: detractors with one star
        for r in session.scalars(
            select(SurveyResponse).where(
                SurveyResponse.submitted_at < local_to_utc(first, time(0), "UTC")
            )
        ):
            r.nps, r.rating = 0, 1
    db.dispose()
    at = app_as("owner", PAGE)
    picker = at.date_input(key="survey_analytics_days")
    picker.set_value((first - timedelta(days=7), first - timedelta(days=1)))
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error
    deltas = {m.label: m.proto.delta for m in at.metric}
    assert metric(at, "Responses") == "2" and not deltas["Responses"], deltas
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Nothing was answered in the 7 days before") for c in captions)
    assert not any(c.startswith("Changes compare with") for c in captions)
    picker = at.date_input(key="survey_analytics_days")
    picker.set_value((first, first + timedelta(days=6)))
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error
    deltas = {m.label: m.proto.delta for m in at.metric}
    assert deltas["Responses"] == "+10 vs previous period (n=2)"
    for label in ("NPS", "CSAT", "Average rating"):
        assert not deltas[label], (label, deltas[label])
    helps = {m.label: m.proto.help for m in at.metric}
    assert helps["NPS"].endswith("fewer than 10: too few to compare"), helps["NPS"]
    assert any(c.value.startswith("Changes compare with the 7 days before") for c in at.caption)


def test_a_package_is_its_own_bar_by_service_and_lists_its_own_responses(app_as, app_db):
    """Twelve answers to visits booked as a package (one the demo books no visit of, as it
    does Skin renewal): the service chart has a bar "Package: Clear skin", said under the
    chart, and a click on it lists those twelve, each named by the package (before: they
    were counted under the package's first service, and the responses did not record their
    package)."""
    db = database(app_db)
    since = local_today("UTC") - timedelta(days=60)
    with db.write() as session:
        package = clear_skin(session)
        answers = session.scalars(
            select(SurveyResponse)
            .where(
                SurveyResponse.rating.is_not(None),
                SurveyResponse.submitted_at >= local_to_utc(since, time(12), "UTC"),
            )
            .order_by(SurveyResponse.id)
            .limit(12)
        ).all()
        for answer in answers:
            answer.package_id = package.id
        ids = {a.id for a in answers}
    db.dispose()
    assert len(ids) == 12
    at = app_as("owner", PAGE)
    assert not at.exception and not at.error
    charts = {c.proto.id: c for c in at.get("echarts_chart")}
    spec = json.loads(next(c for k, c in charts.items() if "survey_chart_service" in k).proto.spec)
    labels = spec["xAxis"]["data"]
    assert "Package: Clear skin" in labels, labels
    assert any(c.value.startswith("A package booked as one visit") for c in at.caption)
    at.session_state["survey_chart_service"] = chart_click(0, labels.index("Package: Clear skin"))
    at.run()
    assert not at.exception, at.exception
    assert "Responses behind Package: Clear skin" in [h.value for h in at.subheader]
    table = next(d.value for d in at.dataframe if "service" in d.value.columns)
    assert len(table) == 12 and set(table.service) == {"Package: Clear skin"}
    assert "12 responses" in [c.value for c in at.caption]


def test_choosing_a_service_changes_every_figure_to_its_visits(app_as, app_db):
    """The Service filter (as on Cancellations): the key figures, the charts' n and the list
    behind a star are those of the responses to visits holding the service; All services
    brings the practice's back (before: no such filter)."""
    db = database(app_db)
    with db.read() as session:
        owner = actor_of(session.scalar(select(User).where(User.username == "owner")))
        today = date.today()
        f = page_filter(session, today - timedelta(days=89), today)
        whole = sa.summary(session, owner, f)
        by_service = sa.by_group(session, owner, f, "service")
        service_id = int(by_service[by_service.dimension == "service"].id.iloc[0])
        picked = replace(f, service_id=service_id)
        s = sa.summary(session, owner, picked)
        fives = bd.distribution(session, owner, picked).ratings[4]
    db.dispose()
    assert 0 < s.responses < whole.responses
    at = app_as("owner", PAGE)
    at.selectbox(key="survey_analytics_service").set_value(service_id)
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert metric(at, "Responses") == f"{s.responses:,}"
    assert metric(at, "NPS") == f"{s.nps:+.0f}"
    assert metric(at, "Average rating") == f"{s.mean:.2f} / 5"
    titles = [json.loads(c.proto.spec)["title"]["text"] for c in at.get("echarts_chart")]
    assert titles[1] == f"Overall rating · n = {s.rating_n:,} ratings"
    at.session_state["survey_chart_ratings"] = chart_click(0, 4)  # the 5 ★ bar
    at.run()
    assert f"{fives:,} responses" in [c.value.split(";")[0] for c in at.caption]
    at.selectbox(key="survey_analytics_service").set_value(None)
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert metric(at, "Responses") == f"{whole.responses:,}"


def test_choosing_a_provider_changes_every_figure_to_their_responses(app_as, app_db):
    """The Provider filter (as on Cancellations, "All providers"): the key figures, their
    change against the previous period, the charts' n and the funnel are those of the
    responses recording that provider and of their visits; All providers brings the
    practice's back (before: no Provider box)."""
    db = database(app_db)
    with db.read() as session:
        owner = actor_of(session.scalar(select(User).where(User.username == "owner")))
        today = date.today()
        f = page_filter(session, today - timedelta(days=89), today)
        whole = sa.summary(session, owner, f)
        by_provider = sa.by_group(session, owner, f, "provider")
        provider_id = int(by_provider.dropna(subset=["id"]).id.iloc[0])
        picked = replace(f, provider_id=provider_id)
        s = sa.summary(session, owner, picked)
        earlier = page_filter(session, today - timedelta(days=179), today - timedelta(days=90))
        p = sa.summary(session, owner, replace(earlier, provider_id=provider_id))
        visits = sa.funnel(session, owner, picked)
        all_visits = sa.funnel(session, owner, f)
    db.dispose()
    assert 0 < s.responses < whole.responses and p.responses > 0
    assert 0 < visits.completed < all_visits.completed
    at = app_as("owner", PAGE)
    at.selectbox(key="survey_analytics_provider").set_value(provider_id)
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert metric(at, "Responses") == f"{s.responses:,}"
    assert metric(at, "NPS") == f"{s.nps:+.0f}"
    assert metric(at, "Average rating") == f"{s.mean:.2f} / 5"
    deltas = {m.label: m.proto.delta for m in at.metric}
    grew = s.responses - p.responses  # a change of none has no sign ("0"), as Babel writes it
    change = f"{grew:+,}" if grew else "0"
    change += f" vs previous period (n={p.responses:,})"
    assert deltas["Responses"] == change, deltas
    titles = [json.loads(c.proto.spec)["title"]["text"] for c in at.get("echarts_chart")]
    assert titles[1] == f"Overall rating · n = {s.rating_n:,} ratings"
    at.segmented_control(key="survey_analytics_section").set_value("Response funnel").run()
    assert metric(at, "Completed visits") == f"{visits.completed:,}"
    assert metric(at, "Answered") == f"{visits.answered:,}"
    at.selectbox(key="survey_analytics_provider").set_value(None)
    at.button(key="FormSubmitter:survey_analytics_filters-Apply").click().run()
    assert metric(at, "Responses") == f"{whole.responses:,}"
    assert metric(at, "Completed visits") == f"{all_visits.completed:,}"
