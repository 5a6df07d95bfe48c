"""Notifications: the send path, the ledger queries (Directus query language), the relay."""
