"""How a service runs: configuration, database and transactions, the outbox
relay, RPC with deadlines, idempotent event handlers, request context, logs,
metrics, migrations, probes and the test helpers. May import the contract
and the rules; neither of them imports plumbing."""
