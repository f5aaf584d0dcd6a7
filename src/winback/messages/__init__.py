"""Rendering messages: templates, composition, journeys, quiet hours and contact data; no sending."""
