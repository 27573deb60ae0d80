"""Forms after booking: the questionnaire, consent and pre-treatment instructions attached to a
service (db.models.ServiceDocument, edited by the practice set-up) go to the patient once the
appointment is scheduled; the patient answers or signs through a single-use link or in the
patient portal (one rule set, once either way); the appointment and Today show what is
outstanding, answered or signed, with a resend. Answers are never deleted, go into the
patient's export, and every opening is audited.

Owns FormRequest. Imports core.scheduling and the packages below it.
"""
