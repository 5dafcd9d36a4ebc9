"""The control plane: tenants and API keys in ``control.db``, and how revocations spread.

``plane.ControlPlane`` is the entry point; ``watch.ControlDbWatcher`` turns revocations
committed by other processes (the CLI) into events on the local revocation bus.
"""
