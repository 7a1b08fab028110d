"""What every service shares, in three parts that import downwards only
(``tests/unit/test_layering.py`` checks it)::

    plumbing   db, transactions, outbox relay, rpc, event handlers,
       │       config, context, logs, metrics, migrations, probes, testing
       ▼
    rules      real names & ID documents, contacts, roles, calendar,
       │       masking, throttles                               (pure)
       ▼
    contract   errors & codes, event names, envelope & payload
               schemas, vocabulary, fields                      (pure)

No service-specific rule lives here, and no service is imported."""
