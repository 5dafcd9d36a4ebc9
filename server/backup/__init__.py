"""Online backup and restore of a whole server, with tenant deletion covering backups.

* :mod:`.crypto` - the pure core: file keys, chunked AES-256-GCM, the manifest MAC.
* :mod:`.keystore` - the tenant key store restores read and deletion shreds.
* :mod:`.files` - the backup's layout, names and manifest.
* :mod:`.take` - ``hypertab backup DIR``.
* :mod:`.verify` - authenticating a backup; ``hypertab backup verify DIR``.
* :mod:`.restore` - ``hypertab restore DIR``.
* :mod:`.errors` - the exception tree, rooted at :class:`BackupError`.

See the "Backup and restore" section of ``docs/operations.md`` for the design.
"""
