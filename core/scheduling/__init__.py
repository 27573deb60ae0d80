"""Appointments from booking to the visit: states and the life cycle, their notes,
availability, provider schedules and cover for their time off, in-office booking, the
calendar, Today and check-in.
Imports core.patients, core.policy, core.messaging and core.kernel.
"""
