"""Task datasets (clean / corrupted prompt pairs with answers) and circuit analyses."""
