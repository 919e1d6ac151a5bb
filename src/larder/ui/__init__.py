"""The web catalog (``larder ui``): browse feature tables, features, functions, specs, models, online
publications, lineage and data quality in a browser, with a JSON API under ``/api/``.

Needs the ``ui`` extra (``pip install larder[ui]``). See docs/ui.md.
"""

from larder.ui.app import create_app, run

__all__ = ["create_app", "run"]
