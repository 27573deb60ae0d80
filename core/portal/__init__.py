"""What patients do without signing in to the staff app: the signed links (enrol, answer a
proposal, ask to cancel or reschedule, request an appointment). Imports core.requests and
the packages below it.
"""
