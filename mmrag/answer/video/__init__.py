"""Long-video QA: clips around the retrieved hits, frames, likelihood-scored choices, the answer."""
