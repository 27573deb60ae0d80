"""The kernel: errors, permissions (authz), audit, clock, configuration, tokens, staff accounts,
audited exports and money. Imports nothing else from core; every other package builds on it.
"""
