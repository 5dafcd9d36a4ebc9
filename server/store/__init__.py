"""Per-tenant durable storage: one SQLite file and one writer per tenant."""
