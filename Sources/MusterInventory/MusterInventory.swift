// MusterInventory
