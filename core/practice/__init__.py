"""Practice set-up: clinics, providers (clinics they work at, services they perform, linked user
account), services (buffers, price, rooms and equipment needed, attached documents), packages,
rooms and equipment per clinic, the set-up checklist and the one choices reader every page uses;
the background jobs' health (job_health) and the database's backups (backups).

Owns: the set-up tables (clinics, providers, services, resources, packages, service documents).
May import: core.kernel and db only; every other core package may import it.
"""
