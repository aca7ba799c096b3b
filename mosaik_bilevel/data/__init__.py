"""What a study is: the case, its tables' schemas, its radial networks, case folders."""
