"""Patient records, their search text (core.patients.search) and portal invitations. Imports
core.messaging and core.kernel."""
