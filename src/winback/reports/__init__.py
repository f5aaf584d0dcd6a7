"""Campaign reports: lift and its uncertainty, return curves, uplift metrics, charts and tables."""
