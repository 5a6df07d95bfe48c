"""The ledger in realtime (contract §13): the change bus and Directus' WebSocket protocol."""
