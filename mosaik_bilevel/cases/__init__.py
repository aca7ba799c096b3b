"""Built-in cases: ``paper``, ``tiny`` and a seeded random generator of small cases."""
