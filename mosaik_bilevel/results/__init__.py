"""What a solve returns: the typed result, the solution frames and the output folders."""
