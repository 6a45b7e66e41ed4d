"""Index folders: the indexer, read-ahead workers, the folder (manifest, file table, lock), transfer."""
