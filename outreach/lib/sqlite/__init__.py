"""outreach's SQLite backend (``DATABASES["default"]["ENGINE"]`` for a ``sqlite:///``
``DATABASE_URL``): Django's own, with two per-statement costs paid once; see :mod:`.base`."""
