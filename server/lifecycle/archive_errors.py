"""The errors of a tenant export and import, apart from the code that raises them: the CLI
turns them into one line everywhere, and importing them must not load ``tarfile`` and the
archive code into every process (``hypertab serve`` included)."""

from __future__ import annotations


class ExportError(Exception):
    """The export could not be written (nothing partial is left at the destination)."""


class ArchiveError(Exception):
    """The archive is not a valid, intact Hypertab export."""
