"""The methods that solve a horizon: exact (with its certificate), LDD-ADMM, the reference
points, and the brute-force reference for tests; one registry by name."""
