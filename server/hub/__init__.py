"""The realtime hub: subscriptions, fan-out of committed changes, client sessions."""
