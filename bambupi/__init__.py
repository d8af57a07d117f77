"""bambupi: a glance box for Bambu Lab printers."""

__version__ = "0.1.0"
