"""Patient records and portal invitations. Imports core.messaging and core.kernel."""
