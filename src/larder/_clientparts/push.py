"""Client methods: push ingestion (``fe.push``)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from larder.context import Context
    from larder.online.push import Pusher, PushResult, PushTarget


class PushMethods:
    """``push``: rows written to a feature table's online stores, its Delta table, or both."""

    _ctx: Context
    _tables: Any
    _publisher: Any
    _online_stores: Any

    @cached_property
    def _pusher(self) -> Pusher:
        from larder.online.push import Pusher

        return Pusher(self._ctx, self._tables, self._publisher, self._online_stores)

    def push(self, name: str, df: Any, to: PushTarget = "online", *, push_id: str | None = None,
             read_after_write: bool = False) -> PushResult:
        """Push the rows of ``df`` (pandas, pyarrow, polars) into feature table ``name``.

        ``to="online"`` writes them to every online store the table is published to (newest wins per
        key, as ``publish_table`` orders rows), ``"offline"`` merges them into the Delta table
        (``write_table``), ``"both"`` commits to Delta first, then writes online. Rows pass the checks of
        ``write_table``; a bad row raises a ``LarderError`` naming the table and column, and nothing is
        written. ``push_id`` (1-36 characters) makes a retry idempotent: a push whose Delta commit is
        already made with that id is not committed again, only its online write is repeated.
        ``read_after_write=True`` returns only once every pushed key reads back from every store (and
        refuses stores that cannot promise it, such as DynamoDB without ``consistent_reads``).
        See docs/push.md.

        Examples
        --------
        >>> import pandas as pd, tempfile
        >>> from larder import FeatureEngineeringClient
        >>> fe = FeatureEngineeringClient(root=tempfile.mkdtemp())
        >>> _ = fe.create_table("users", primary_keys="uid", df=pd.DataFrame({"uid": [1], "clicks": [3]}))
        >>> _ = fe.publish_table("users")
        >>> r = fe.push("users", pd.DataFrame({"uid": [1, 2], "clicks": [4, 1]}), to="both")
        >>> (r.rows, r.delta_version, [w.changed for w in r.online])
        (2, 1, [2])
        >>> fe.close()
        """
        return self._pusher.push(name, df, to, push_id=push_id, read_after_write=read_after_write)
