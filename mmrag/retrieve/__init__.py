"""Retrieval: query to prefetches, hybrid fusion, filters, hubness correction, multi-hop."""
