"""The cancellation policy: versions per clinic and service, the window, fees and points; and
the one way a patient's points balance changes (`balance`: the row locked, the ledger entry
written). Imports only core.kernel.
"""
