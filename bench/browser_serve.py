"""`streamlit run bench/browser_serve.py`: serve.py's ASGI app (session-cookie routes, jobs
loop) around bench/browser_app.py (through a launcher at the root) instead of app.py."""

import streamlit as st
from starlette.routing import Route

import serve

# the main script must sit at the repository root (pages and page links are resolved from its
# folder): bench.browser writes this one-line launcher there for the run and removes it after
MAIN = ".bench-browser-main.py"

app = st.App(
    f"../{MAIN}",
    lifespan=serve.lifespan,
    middleware=serve.MIDDLEWARE,
    routes=[
        Route("/_clinicdesk/session", serve.set_session, methods=["POST"]),
        Route("/_clinicdesk/signout", serve.end_session, methods=["POST"]),
    ],
)
