"""Data in and out: CSV import of appointments, FHIR R4 and iCalendar. Imports the packages
below it that it reads and writes by their rules: core.analytics, core.forms, core.scheduling
(status words), core.patients (a name, contact and date of birth as the forms check them),
core.payments, core.policy, core.messaging, core.practice, and core.kernel.
"""
