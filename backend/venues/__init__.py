"""Venue adapters: one interface (``backend.venues.base.Venue``), several venues."""
