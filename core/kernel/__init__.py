"""The kernel: errors, permissions (authz), audit, clock, configuration, tokens, staff accounts,
audited exports, money, phone numbers (core.kernel.phones), the rule for typed text
(core.kernel.text) and the times of day a patient may ask for, with their one label
(core.kernel.times_of_day). Imports nothing else from core; every other package builds on it.
"""
