"""Fail points: named places where a test can kill the process, to prove an operation crash-consistent.

With ``LARDER_FAILPOINT=<name>`` in the environment, :func:`failpoint` kills the current process with
``SIGKILL`` when execution reaches the point called ``<name>``: no ``finally`` block, no ``atexit``
hook and no database rollback runs, exactly as when the machine loses power or the OOM killer strikes.
Without the variable a fail point costs one dictionary lookup.

The points (each between two writes that must not be seen apart):

=================================  ============================================================
``create_table:before_commit``     storage directory claimed, Delta table not yet committed
``create_table:after_commit``      Delta version 0 committed, catalog row not yet written
``create_table:after_catalog``     catalog row (with the rows' profile) written, call not returned
``drop_table:after_rename``        storage moved aside, catalog row not yet deleted
``drop_table:after_catalog``       catalog row deleted, storage not yet removed
``write_table:after_commit``       Delta version committed, catalog features not yet updated
``publish_table:after_batch``      a batch handed to the online store, the publish not finished
``push:before_commit``             a push recorded as under way, its Delta version not yet committed
``push:after_commit``              a push's Delta version committed, the online stores not written
``stream:after_delta_commit``      a stream batch (and its offsets) committed to Delta, not noted
``stream:after_online``            a stream batch written online, its online offsets not noted
=================================  ============================================================
"""

from __future__ import annotations

import os
import signal

ENV = "LARDER_FAILPOINT"


def failpoint(name: str) -> None:
    """Kill this process (SIGKILL) if ``LARDER_FAILPOINT`` names this point; otherwise do nothing."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ENV", "failpoint"]
