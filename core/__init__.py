"""The domain: services and queries as plain functions. Never imports streamlit."""
