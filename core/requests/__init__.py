"""The request queue: booking requests and their decisions, patients' change requests, bulk
decisions. Imports core.scheduling and the packages below it.
"""
