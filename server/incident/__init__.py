"""Incident response: contain a breach at once, then report what it touched.

- :mod:`.contain`: ``hypertab incident contain --tenant T | --all`` revokes every key,
  closes every socket, issues a fresh admin key per tenant, rotates data keys (and, with
  ``--all``, the master key), records one ``incident.contained`` entry with a case id, and
  says what users must do next.
- :mod:`.report`: ``hypertab incident report --since …`` reads the audit logs and lists the
  tenants, keys, addresses and actions in a window (JSON and CSV) for the 72-hour
  notification. ``INCIDENTS.md`` at the repository root is the format of the published
  root-cause report.
"""
