"""The kernel: errors, permissions (authz), audit, clock, configuration, tokens, staff accounts,
audited exports, money, phone numbers (core.kernel.phones) and the rule for typed text
(core.kernel.text). Imports nothing else from core; every other package builds on it.
"""
