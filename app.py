"""ClinicDesk entry point: page config, database check, sign-in, navigation by role."""

import functools

import streamlit as st

from core.kernel.errors import DomainError
from ui import auth
from ui.context import reachable_database, stop_with
from ui.job_health import banner
from ui.navigation import PAGES, PATIENT_PAGE, PORTAL_PAGE, pages_for, refused, refused_for
from ui.text import escape

st.set_page_config(page_title="ClinicDesk", page_icon=":material/medical_services:", layout="wide")

try:
    reachable_database()
except DomainError as error:  # unreachable database or a malformed setting: one clear line
    stop_with(error)

actor = auth.current_actor() or auth.oidc_sign_in()


def _patient_pages() -> list:
    return [
        # the page behind signed patient links, open without sign-in
        st.Page(str(PATIENT_PAGE), title="Patient", url_path="patient", visibility="hidden"),
        # the patient portal: its own passwordless sign-in and session, never a staff one
        st.Page(str(PORTAL_PAGE), title="Patient portal", url_path="portal", visibility="hidden"),
    ]


def _staff_pages(actor) -> tuple[dict[str, list], object]:
    """The role's sections and the landing, built once per session and role (st.Page finds its
    file on the disk and checks its icon each time: some 30 pages on every run). Never shared
    between sessions: st.navigation marks the page object it picks runnable for that run."""
    key = f"app_pages_{actor.role.value}"
    if key not in st.session_state:
        sections: dict[str, list] = {}
        role_pages = []
        for spec in pages_for(actor):
            page = st.Page(
                str(spec.path),
                title=spec.title,
                icon=spec.icon,
                url_path=spec.url_path,  # every page at its own address, /today included
                visibility="hidden" if spec.hidden else "visible",
            )
            role_pages.append(page)
            sections.setdefault(spec.section, []).append(page)
        # `/` is a hidden landing that moves on to the role's first page (Today for every
        # role), so that page keeps its own address instead of being served at the root only
        # a page this role may not use still has its address: a colleague's bookmark or link
        # says whose page it is instead of Streamlit's "Page not found"
        refusals = [
            st.Page(
                functools.partial(refused, spec),
                title=spec.title,
                url_path=spec.url_path,
                visibility="hidden",
            )
            for spec in refused_for(actor)
        ]
        home = role_pages[0]
        landing = st.Page(
            lambda: st.switch_page(home),
            title=home.title,
            url_path="home",
            default=True,
            visibility="hidden",
        )
        sections.setdefault("Front desk", []).extend([*_patient_pages(), *refusals])
        sections["Front desk"].insert(0, landing)
        st.session_state[key] = sections, landing
    return st.session_state[key]


if actor is None:
    auth.clear_cookie_in_browser()
    entry = auth.sign_in_page if auth.has_users() else auth.first_run_page
    # every staff page's address asks to sign in too, so /today or a clinic email's
    # /appointment?id=N opens that page once signed in instead of "Page not found"
    addresses = [
        st.Page(entry, title="Sign in", url_path=spec.url_path, visibility="hidden")
        for spec in PAGES
    ]
    pages = [st.Page(entry, title="Sign in", default=True), *addresses, *_patient_pages()]
    st.navigation(pages, position="hidden").run()
elif actor.password_change_due:  # a password the owner chose: theirs first, nothing else
    auth.set_cookie_in_browser()
    with st.sidebar:
        st.caption(f"Signed in as **{escape(actor.name)}** ({actor.role.value})")
        if st.button("Sign out", key="app_sign_out", icon=":material/logout:"):
            auth.sign_out()
    choose = auth.choose_own_password_page
    addresses = [
        st.Page(choose, title="Choose your password", url_path=spec.url_path, visibility="hidden")
        for spec in PAGES
    ]
    pages = [st.Page(choose, title="Choose your password", default=True), *addresses]
    st.navigation(pages, position="hidden").run()
else:
    sections, landing = _staff_pages(actor)
    chosen = st.navigation(sections, expanded=True)  # every page listed, none behind "View more"
    with st.sidebar:
        st.caption(f"Signed in as **{escape(actor.name)}** ({actor.role.value})")
        if st.button("Sign out", key="app_sign_out", icon=":material/logout:"):
            auth.sign_out()
        if chosen is not landing:  # it moves on at once: what the form has to say waits
            auth.own_password_form()
    if chosen is not landing:  # the landing moves on at once: the page it opens sets the cookie
        auth.set_cookie_in_browser()
        if chosen.url_path != "practice":  # that page lists the failing jobs itself
            banner(actor)
    chosen.run()
