"""The public page behind signed patient links: /patient?p=PURPOSE&t=TOKEN, open without sign-in.

Dispatches to ui/patient/<purpose>.py; a missing module, an unknown purpose or an invalid token
all end on the same neutral page."""

import importlib

import streamlit as st

from core.kernel.errors import LinkInvalid
from ui.patient import PURPOSES, invalid_link


def _module(purpose: str):
    if purpose not in PURPOSES:
        return None
    try:
        return importlib.import_module(f"ui.patient.{purpose}")
    except ModuleNotFoundError:
        return None


purpose = str(st.query_params.get("p", ""))
token = str(st.query_params.get("t", ""))
module = _module(purpose) if token else None
if module is None or not hasattr(module, "render"):
    invalid_link()
else:
    try:
        module.render(token)
    except LinkInvalid:
        invalid_link()
