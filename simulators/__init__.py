"""mosaik simulators of mosaik_bilevel (installed as ``mosaik_bilevel.simulators``)."""
