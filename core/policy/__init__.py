"""The cancellation policy: versions per clinic and service, the window, fees and points.
Imports only core.kernel.
"""
