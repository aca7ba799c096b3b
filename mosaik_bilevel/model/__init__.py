"""The formulation: linear models of the communities, the follower and its KKT system.

Builds models (numpy, scipy, pandas), never solves them.
"""
