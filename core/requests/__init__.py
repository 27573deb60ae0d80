"""The request queue: booking requests and their decisions, patients' change requests, bulk
decisions, the desk's actions on a public request's flag. Imports core.scheduling and the
packages below it.
"""
