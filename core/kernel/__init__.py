"""The kernel: errors, permissions (authz), audit, clock, configuration, tokens, staff accounts,
audited exports, money and the rule for typed text (core.kernel.text). Imports nothing else from
core; every other package builds on it.
"""

from core.kernel.text import install as _install_text_rule

_install_text_rule()  # every flush cleans and bounds typed text (see core.kernel.text)
