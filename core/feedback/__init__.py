"""Surveys after a completed visit: requests, answers, settings. Imports core.messaging and
core.kernel.
"""
