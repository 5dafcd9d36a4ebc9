"""The control plane: tenants and API keys in ``control.db``, authentication, revocation.

``plane.ControlPlane`` is the entry point, a composition of one idea per module:

- ``db``: the connection to control.db and its write transactions;
- ``tenants`` (records, reads, names) and ``tenancy`` (signup, plan, deletion, containment);
- ``keys``: API keys issued, listed, narrowed, rotated, revoked;
- ``authentication``: API key or JWT to ``Principal``, and which credentials died since
  (``keycache``: verified reads kept while control.db is unchanged);
- ``revocations``: revoking transactions and the bus; ``watch`` turns revocations committed
  by other processes (the CLI) into events on the local bus, ``notify`` wakes it at once,
  ``pulse`` reads ``data_version`` once every 50 ms for it and the hub's dispatchers;
- ``audit_entries``: what these changes write to the control audit log;
- ``origins``: each tenant's browser Origin allowlist.
"""
