"""Solver back-ends: HiGHS on the models' arrays, lazy binaries, the Pyomo MIQP path."""
