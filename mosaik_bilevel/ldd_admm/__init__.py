"""The distributed LDD-ADMM method (model.md §6): communities, coordinator, backends."""
