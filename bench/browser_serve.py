"""`streamlit run bench/browser_serve.py`: serve.py's ASGI app (session-cookie routes, jobs
loop) around bench/browser_app.py instead of app.py."""

import streamlit as st
from starlette.routing import Route

import serve

app = st.App(
    "bench/browser_app.py",
    lifespan=serve.lifespan,
    routes=[
        Route("/_clinicdesk/session", serve.set_session, methods=["POST"]),
        Route("/_clinicdesk/signout", serve.end_session, methods=["POST"]),
    ],
)
