"""Cash-up: the day's money per clinic and method (what the till, the card terminal and the card
provider show), for whoever takes it at the desk, with the refunds owed back to mark handed back;
the CSV export of payments and refunds for those who may export."""

import streamlit as st

from ui import actor
from ui.cashup_panel import cash_up_panel
from ui.locale import display_format

st.title("Cash-up")
cash_up_panel(actor(), display_format())  # All clinics: in the practice's (first clinic's) format
