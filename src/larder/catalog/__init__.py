"""The metadata catalog: feature tables, features, tags, functions, specs, models, lineage."""

from larder.catalog.base import Base, Catalog, utcnow

__all__ = ["Base", "Catalog", "utcnow"]
