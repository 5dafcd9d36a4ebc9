"""Operator alerts: security events that page someone, through the delivery outbox.

How it works
------------
Every alerting event is already an entry of the control audit log, written in the same
transaction as the action (``server.audit.events``). A trigger on ``_ht_audit_log`` in
``control.db`` (:mod:`.schema`) copies each entry that :mod:`.rules` names as alerting into
``_ht_alert_outbox`` — inside the very transaction that writes the entry, whichever process
writes it (the hub, a CLI command, the lifecycle code). So an action that rolls back raises
no alert, a committed one always has its outbox row, and "each alert is also in the audit
log" holds by construction: the row points to its entry.

The hub's :class:`~.dispatcher.AlertDispatcher` notices new rows within ``poll`` (it reads
``PRAGMA data_version``, a few microseconds), writes them to the log sink and POSTs them to
the webhook sink (:mod:`server.delivery`), with retries, leases so that two processes never
send the same row at once, and a failed state past the retry bound (``hypertab alerts list
--failed``, the ``hypertab_alerts_failed`` gauge). ``hypertab alerts deliver`` runs one
round from the CLI when no hub is running.

Events that are not otherwise audited get an entry of their own here: a burst of failed
handshakes (:mod:`.burst`), a broken audit chain, an abuse close, a master key rotation.
"""
