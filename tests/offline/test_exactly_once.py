"""A commit whose acknowledgement is lost (stored by the object store, then reported as a conflict or an
error) is found by its write id: the write returns its version and is not made twice."""

from __future__ import annotations

import pandas as pd
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.table import TableMerger

from larder.offline.delta import WRITE_ID_KEY

pytestmark = pytest.mark.deployments("local", "team")


def houses(ids) -> pd.DataFrame:
    return pd.DataFrame({"Id": list(ids), "q": [float(i) for i in ids]})


@pytest.mark.parametrize("lost_as", [CommitFailedError, OSError])
def test_a_merge_whose_ack_is_lost_is_committed_once(fe, monkeypatch: pytest.MonkeyPatch, lost_as):
    fe.create_table("houses", "Id", df=houses([1, 2]))
    real = TableMerger.execute
    calls = []

    def committed_then_lost(self):  # type: ignore[no-untyped-def]
        result = real(self)  # the commit is in the log...
        calls.append(result)
        if len(calls) == 1:
            raise lost_as("connection reset after the commit was stored")  # ...but its ack is lost
        return result

    monkeypatch.setattr(TableMerger, "execute", committed_then_lost)
    assert fe.write_table("houses", houses([2, 3])) == 1
    assert len(calls) == 1  # found by its write id: not merged a second time
    loc = fe._ctx.storage.table_location("main", "default", "houses")
    log = DeltaTable(loc.uri, storage_options=loc.storage_options).history()
    assert [h["version"] for h in log] == [1, 0] and log[0][WRITE_ID_KEY]
    assert sorted(fe.read_table("houses")["Id"]) == [1, 2, 3]
    assert fe.table_history("houses")["version"].tolist() == [1, 0]
