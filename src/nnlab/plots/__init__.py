"""Every figure, as functions returning a matplotlib Figure."""
