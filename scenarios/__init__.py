"""Ready scenarios of mosaik_bilevel (installed as ``mosaik_bilevel.scenarios``)."""
