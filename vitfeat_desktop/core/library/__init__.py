"""A folder of photos indexed: the catalogue (SQLite), the ANN index (hnswlib), the scanner, the facade."""
