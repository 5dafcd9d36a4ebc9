"""Change and presence broadcast between hub processes (memory alone, Redis for many)."""
