"""Accounts: registration against the identity registry, phone verification, tokens and roles."""
