"""What the table list reads instead of the Delta log: the stats recorded at every write, filled in
for older catalogs, corrected by the table page; and the list never opens a table's Delta log."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from larder.catalog.stats import TableStatsRecord, record_table_stats, tables_without_stats
from larder.catalog.tables import TableRecord
from larder.ui import create_app
from larder.ui.service import backfill_stats


def stats(fe: Any, name: str) -> tuple[int, int] | None:
    with fe._ctx.catalog.session() as s:
        row = s.execute(select(TableStatsRecord.delta_version, TableStatsRecord.row_count)
                        .join(TableRecord, TableRecord.id == TableStatsRecord.table_id)
                        .where(TableRecord.full_name == f"main.default.{name}")).first()
        return None if row is None else (row[0], row[1])


def frame(ids: range, v: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"k": list(ids), "v": [v] * len(ids)})


def test_every_write_records_version_and_rows(fe: Any) -> None:
    fe.create_table("t", "k", df=frame(range(10)))
    assert stats(fe, "t") == (0, 10)
    fe.write_table("t", frame(range(5, 15), 2.0))          # 5 updated, 5 new
    assert stats(fe, "t") == (1, 15) == (fe.get_table("t").version, fe.get_table("t").row_count)
    fe.write_table("t", frame(range(3)), mode="overwrite")
    assert stats(fe, "t") == (2, 3)
    fe.create_table("empty", "k", schema={"k": "int", "v": "double"})
    assert stats(fe, "empty") == (0, 0)
    fe.write_table("empty", frame(range(4)))
    assert stats(fe, "empty") == (1, 4)
    fe.drop_table("t")
    with fe._ctx.catalog.session() as s:
        assert s.scalar(select(TableStatsRecord).where(TableStatsRecord.delta_version == 2)) is None


def test_a_slower_writer_never_moves_the_stats_back(fe: Any) -> None:
    from datetime import datetime

    fe.create_table("t", "k", df=frame(range(10)))
    fe.write_table("t", frame(range(10, 20)))
    with fe._ctx.catalog.session() as s:
        tid = s.scalar(select(TableRecord.id).where(TableRecord.full_name == "main.default.t"))
        record_table_stats(s, tid, version=0, row_count=10, written_at=datetime(2020, 1, 1))
    assert stats(fe, "t") == (1, 20)


def test_a_failed_write_records_nothing(fe: Any) -> None:
    import pytest

    from larder.errors import PrimaryKeyError

    fe.create_table("t", "k", df=frame(range(3)))
    with pytest.raises(PrimaryKeyError):
        fe.write_table("t", pd.DataFrame({"k": [1, 1], "v": [0.0, 1.0]}))
    assert stats(fe, "t") == (0, 3)


def test_older_catalogs_are_filled_in_and_the_table_page_corrects(fe: Any, larder_root: Path) -> None:
    for name in ("a", "b", "c"):
        fe.create_table(name, "k", df=frame(range(len(name) + 4)))
    fe.write_table("b", frame(range(100, 103)))
    with fe._ctx.catalog.session() as s:
        s.execute(delete(TableStatsRecord))
    with fe._ctx.catalog.session() as s:
        assert len(tables_without_stats(s)) == 3
    assert backfill_stats(fe) == 3
    assert (stats(fe, "a"), stats(fe, "b"), stats(fe, "c")) == ((0, 5), (1, 8), (0, 5))
    with fe._ctx.catalog.session() as s:
        s.execute(update(TableStatsRecord).values(row_count=999))
    with TestClient(create_app(larder_root, token="", backfill_stats=False), base_url="http://127.0.0.1") as c:
        assert c.get("/api/tables", params={"q": "main.default.b"}).json()["tables"][0]["rows"] == 999
        assert c.get("/api/tables/b").json()["rows"] == 8  # reads Delta ...
        assert c.get("/api/tables", params={"q": "main.default.b"}).json()["tables"][0]["rows"] == 8  # ... and fixes


def test_the_app_fills_in_missing_stats_in_the_background(fe: Any, larder_root: Path) -> None:
    import time

    fe.create_table("a", "k", df=frame(range(7)))
    with fe._ctx.catalog.session() as s:
        s.execute(delete(TableStatsRecord))
    with TestClient(create_app(larder_root, token=""), base_url="http://127.0.0.1") as c:
        deadline = time.monotonic() + 30
        while c.get("/api/tables").json()["stats_pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        (row,) = c.get("/api/tables").json()["tables"]
        assert (row["rows"], row["version"]) == (7, 0)


def test_the_list_never_opens_a_delta_log(fe: Any, larder_root: Path) -> None:
    fe.create_table("gone", "k", df=frame(range(4)), description="its files are elsewhere")
    shutil.rmtree(fe.get_table("gone").path)
    with TestClient(create_app(larder_root, token="", backfill_stats=False), base_url="http://127.0.0.1") as c:
        body = c.get("/api/tables", params={"q": "elsewhere"}).json()
        assert [(t["name"], t["rows"], t["version"]) for t in body["tables"]] == [("main.default.gone", 4, 0)]
        assert c.get("/tables").status_code == 200
        page = c.get("/api/tables/gone")
        assert page.status_code == 400 and "missing" in page.json()["detail"]  # the table page does read it


def test_the_list_follows_every_change_made_elsewhere(fe: Any, larder_root: Path, monkeypatch: Any) -> None:
    """Another client's creates, writes, tag, description and owner changes and drops show up in the
    list at the next request, incrementally refreshed, exactly as a freshly loaded index has them."""
    from larder.ui import search
    from larder.ui.service import CatalogBrowser

    monkeypatch.setattr(search, "FULL_RELOAD_S", 1e9)  # only incremental refreshes after the first load
    fe.create_table("a", "k", df=frame(range(3)), tags={"team": "x"})
    fe.create_table("b", "k", df=frame(range(4)))
    with TestClient(create_app(larder_root, token="", backfill_stats=False), base_url="http://127.0.0.1") as c:
        def listed(q: str = "") -> list[tuple[Any, ...]]:
            return [(t["name"], t["rows"], t["version"], tuple(sorted(t["tags"].items())), t["features"])
                    for t in c.get("/api/tables", params={"q": q}).json()["tables"]]

        assert [n for n, *_ in listed()] == ["main.default.a", "main.default.b"]
        fe.write_table("b", pd.DataFrame({"k": [10], "v": [1.0], "w": [2.0]}))  # new row and new feature
        fe.set_feature_table_tag(name="a", key="tier", value="gold")
        fe.set_feature_description("b", "w", "the new widget column")
        fe.create_table("c", "k", df=frame(range(1)))
        fe.drop_table("a")
        assert listed() == [("main.default.b", 5, 1, (), 2), ("main.default.c", 1, 0, (), 1)]
        assert [n for n, *_ in listed("widget")] == ["main.default.b"]
        assert listed("gold") == []
        with fe._ctx.catalog.session() as s:
            s.execute(update(TableRecord).where(TableRecord.full_name == "main.default.c").values(owner="zed"))
        fe.set_feature_table_tag(name="c", key="tier", value="gold")  # (an owner change comes with a tag)
        assert [t["owner"] for t in c.get("/api/tables", params={"q": "gold"}).json()["tables"]] == ["zed"]
        incremental = c.get("/api/tables", params={"sort": "rows", "order": "desc"}).json()
    fresh = CatalogBrowser(fe).tables(sort="rows", order="desc").model_dump(mode="json")
    assert incremental == fresh
