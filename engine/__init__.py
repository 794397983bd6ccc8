"""klx: a declarative extraction engine for HTTP APIs into warehouses."""

__version__ = "0.1.0"
