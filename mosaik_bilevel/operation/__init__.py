"""Rolling operation without mosaik: communities in operation, the market operator, the AC
network and the AC check of a dispatch."""
