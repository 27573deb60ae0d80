"""Messages to patients and the clinic: the outbox, templates and senders (SMTP, SMS).
Imports only core.kernel.
"""
