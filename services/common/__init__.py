"""Plumbing shared by every service: config, database, outbox, errors, RPC
deadlines, request context, logging, metrics. No domain rules live here."""
