"""The sandbox provider: accepts every message and writes it as an ``.eml`` file (the default)."""
