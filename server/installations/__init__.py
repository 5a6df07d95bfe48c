"""Installations and credentials (contract §4): lifecycle events, API keys, OAuth, encryption."""
