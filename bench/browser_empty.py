"""The empty page bench.browser measures every page against: the app's shell and a title."""

import streamlit as st

st.title("Empty page")
