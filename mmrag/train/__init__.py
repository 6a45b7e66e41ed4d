"""Training the bridge's projector, and its data."""
