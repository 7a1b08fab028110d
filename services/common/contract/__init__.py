"""The bus contract: what crosses between services — the error tree and its
stable codes, event names, the envelope and payload schemas, the shared
vocabulary and marshmallow fields. Pure: imports nothing else of
``services.common``; the other two parts import it."""
