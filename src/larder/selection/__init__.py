"""Feature selection: :func:`select_features` returns a :class:`SelectionReport`.

Filters (``variance``, ``correlation``) run first; rankers (``mutual_info``, ``importance``,
``rfe``) are combined by mean rank; the top ``k`` are selected. See :mod:`larder.selection.select`.
"""

from larder.selection.report import SelectionReport
from larder.selection.select import select_features

__all__ = ["SelectionReport", "select_features"]
