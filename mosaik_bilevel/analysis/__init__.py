"""Comparison, experiments and reports: the deviation of LDD-ADMM from the exact method,
the paper's findings, HTML reports of output folders."""
