"""mosaik_bilevel: bilevel coordination of LV energy communities and the MV network."""
