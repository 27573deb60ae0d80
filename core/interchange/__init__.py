"""Data in and out: CSV import of appointments, FHIR R4 and iCalendar. Imports
core.scheduling (status words) and core.kernel.
"""
