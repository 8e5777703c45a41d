"""The civil-status registry behind an adapter: a table locally, the interconnection bus in production."""
