"""Amazon DynamoDB online store.

Layout
------
One DynamoDB table per feature table (``table_prefix`` + the full name with ``.`` written ``__``,
or ``table_name``), billed ``PAY_PER_REQUEST``, created on first write, with one string hash key::

    _pk          S     the encoded entity key (larder.online.stores.encoding.encode_keys), e.g. "42"
    _order       N     the row's order (event time in µs, or a publish sequence)
    <key column> ...   each primary-key column, typed as below
    <feature>    ...   each non-null feature; a null feature is an absent attribute
    _gen         S     only on rows written by replace_table: that replace's id
    _expires_at  N     only with ``ttl``: epoch seconds after which DynamoDB's TTL deletes the item

Values: integers and decimals (precision <= 38) ``N``; floats ``N`` when finite and inside
DynamoDB's number range (1E-130 <= |x| < 1E+126, or 0), else ``S`` with the canonical text
(``nan``, ``inf``, ``-inf``, ``1e+300``, ``5e-324``); booleans ``BOOL``; strings ``S``; binary ``B``;
timestamps ``S`` like ``2024-03-01 12:00:00.123456Z``; dates ``S`` like ``2024-03-01``.

Writes
------
``write_mode="conditional"`` (default): one ``PutItem`` per row with the condition
``attribute_not_exists(_pk) OR _order <= :order``, run in parallel on a thread pool. Exact with
any number of concurrent writers: a stored row is never replaced by an older one.
(``BatchWriteItem`` cannot carry conditions, and ``TransactWriteItems`` costs twice the write units.)

``write_mode="batch"``: read the stored orders (``BatchGetItem`` of ``_pk`` and ``_order``, 100 keys,
strongly consistent), then ``BatchWriteItem`` (25 items) only the rows at least as new. About 25x
fewer requests; exact when one writer at a time writes a table (a concurrent writer's newer row
could be overwritten between the read and the write).

``replace_table`` writes every row stamped with a fresh ``_gen`` by ``BatchWriteItem`` (a key seen
twice in one replace goes through a conditional ``PutItem`` so the newest order wins), then scans
for items without that stamp and deletes them. A concurrent reader sees each key either with its
old or its new row (never a torn item), and keys absent from the new rows disappear at the end. A
failed replace leaves a mix of old and new rows: run it again.

Limits and retries
------------------
Larder itself enforces DynamoDB's limits: 25 items per ``BatchWriteItem``, 100 keys per
``BatchGetItem``, 400 KB per item (:class:`~larder.errors.ItemTooLargeError` names the key), 2048
bytes per key. ``UnprocessedItems``/``UnprocessedKeys``, throttling and 5xx errors are retried with
exponential backoff and full jitter (``sleep = uniform(0, min(cap, base * 2**attempt))``) up to
``max_retries`` per request, then :class:`~larder.errors.RetryBudgetExceededError`; botocore's own
retries are turned off so the budget is larder's alone. Credentials come from boto3's default chain
and are never stored or logged.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from larder.errors import (
    ConfigError,
    ItemTooLargeError,
    OnlineStoreError,
    OnlineTableNotFoundError,
    PrimaryKeyError,
    RetryBudgetExceededError,
    require,
)
from larder.online.stores.base import (
    ORDER_COLUMN,
    OnlineStore,
    OnlineTable,
    PreparedRows,
    ValueBatch,
    prepare_rows,
    read_plan,
    typed_table,
)
from larder.online.stores.encoding import check_supported, from_text, kind_of, storage_type, to_text
from larder.online.stores.specs import DynamoDBStoreSpec

PK, ORDER, GEN, EXPIRES = "_pk", "_order", "_gen", "_expires_at"
RESERVED = (PK, ORDER, GEN, EXPIRES)
MAX_BATCH_WRITE = 25
MAX_BATCH_GET = 100
MAX_ITEM_BYTES = 400 * 1024
MAX_KEY_BYTES = 2048
_PUTS_PER_TASK = 32
RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
        "TransactionConflictException",
    }
)
_CONDITION = "attribute_not_exists(#pk) OR #o <= :o"
_CONDITION_REPLACE = "attribute_not_exists(#pk) OR #g <> :g OR #o <= :o"
T = TypeVar("T")
_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


class DynamoDBOnlineStore(OnlineStore):
    """Online store in Amazon DynamoDB (see the module docstring for layout and guarantees).

    Parameters
    ----------
    spec
        A :class:`~larder.online.stores.specs.DynamoDBStoreSpec`; keyword options override its fields
        (``region``, ``table_name``, ``table_prefix``, ``endpoint_url``, ``ttl``,
        ``consistent_reads``, ``max_workers``, ``max_retries``, ``write_mode``).
    retry_base_delay, retry_max_delay
        Backoff base and cap in seconds.

    Examples
    --------
    >>> store = DynamoDBOnlineStore(region="eu-west-1", ttl=timedelta(days=30))  # doctest: +SKIP
    """

    def __init__(
        self,
        spec: DynamoDBStoreSpec | None = None,
        /,
        *,
        retry_base_delay: float = 0.05,
        retry_max_delay: float = 5.0,
        **options: Any,
    ) -> None:
        boto3 = require("boto3", extra="dynamodb", feature="The DynamoDB online store")
        botocore = require("botocore.config", extra="dynamodb", feature="The DynamoDB online store")
        self._exceptions = require("botocore.exceptions", extra="dynamodb", feature="DynamoDB")
        try:
            base = spec.model_dump() if spec is not None else {}
            self.spec = DynamoDBStoreSpec(**{**base, **options})
        except Exception as exc:  # pydantic's ValidationError
            raise ConfigError(f"Invalid DynamoDB online store options: {exc}") from exc
        s = self.spec
        self.ttl_seconds = int(s.ttl.total_seconds()) if s.ttl else 0
        if s.ttl is not None and self.ttl_seconds <= 0:
            raise ConfigError(f"DynamoDB online store: ttl must be at least one second, got {s.ttl}.")
        self.max_retries = s.max_retries
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        config = botocore.Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(10, 2 * s.max_workers),
            connect_timeout=10,
            read_timeout=60,
        )
        try:
            with _SESSION_LOCK:  # one boto3 session per process: its loaded service models are reused
                global _SESSION
                if _SESSION is None:
                    _SESSION = boto3.session.Session()
                self._client = _SESSION.client(
                    "dynamodb", region_name=s.region, endpoint_url=s.endpoint_url, config=config
                )
        except self._exceptions.NoRegionError as exc:
            raise ConfigError(
                "DynamoDB online store: no AWS region. Set `region` in the spec or AWS_DEFAULT_REGION."
            ) from exc
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._ready: set[str] = set()
        self._bound: str | None = None
        self._random = random.Random()
        self._closed = False

    # -- names and plumbing -----------------------------------------------------------------


    def to_spec(self) -> DynamoDBStoreSpec:
        return self.spec
    def physical_name(self, table: OnlineTable) -> str:
        """The DynamoDB table that holds ``table``."""
        if self._closed:
            raise OnlineStoreError("This DynamoDB online store is closed.")
        if self.spec.table_name:
            if self._bound is None:
                self._bound = table.name
            elif self._bound != table.name:
                raise OnlineStoreError(
                    f"This DynamoDB store writes every feature table to table_name="
                    f"{self.spec.table_name!r}, already used for {self._bound!r}; it cannot also hold "
                    f"{table.name!r}. Use table_prefix (one DynamoDB table per feature table)."
                )
            return self.spec.table_name
        return self.spec.table_prefix + table.name.replace(".", "__")

    def _check(self, table: OnlineTable) -> None:
        check_supported(table.name, table.schema, table.primary_keys, RESERVED)

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.spec.max_workers, thread_name_prefix="larder-ddb")
            return self._pool

    def _parallel(self, fn: Callable[[T], Any], tasks: Sequence[T]) -> list[Any]:
        """Run ``fn`` over ``tasks`` on the pool (inline for one task); first error cancels the rest."""
        if len(tasks) <= 1:
            return [fn(t) for t in tasks]
        futures: list[Future[Any]] = [self._executor().submit(fn, t) for t in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                wait(pending)
                raise f.exception()  # type: ignore[misc]
        return [f.result() for f in futures]

    def _sleep(self, attempt: int) -> None:
        cap = min(self.retry_max_delay, self.retry_base_delay * (2**attempt))
        time.sleep(self._random.uniform(0.0, cap))

    def _error(self, exc: Exception, op: str, table: OnlineTable, physical: str) -> OnlineStoreError:
        ex = self._exceptions
        if isinstance(exc, ex.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "")
            if code == "ResourceNotFoundException":
                return OnlineTableNotFoundError(
                    f"Online table {table.name!r} is not in DynamoDB (table {physical!r} does not "
                    "exist); publish it first with publish_table()."
                )
            if code in ("AccessDeniedException", "UnrecognizedClientException"):
                return OnlineStoreError(
                    f"DynamoDB refused {op} on {physical!r} ({code}: {message}). The credentials of "
                    "boto3's default chain need the permissions listed in docs/online-stores.md."
                )
            return OnlineStoreError(f"DynamoDB {op} on {physical!r} failed ({code}): {message}")
        if isinstance(exc, ex.NoCredentialsError):
            return OnlineStoreError(
                "DynamoDB online store: boto3 found no AWS credentials (environment, shared config, "
                "or instance/role credentials). Configure one of them."
            )
        return OnlineStoreError(f"DynamoDB {op} on {physical!r} failed: {exc}")

    def _call(
        self,
        op: str,
        table: OnlineTable,
        physical: str,
        attempt: int = 0,
        accept: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> tuple[Any, int]:
        """One API call, retried on throttling, 5xx and connection errors within the budget.

        Returns the response (None when the call failed with an error code in ``accept``) and the
        attempt counter, so batch loops share one budget.
        """
        ex = self._exceptions
        method = getattr(self._client, op)
        while True:
            try:
                return method(**kwargs), attempt
            except ex.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if code in accept:
                    return None, attempt
                if code not in RETRYABLE and status < 500:
                    raise self._error(exc, op, table, physical) from exc
                last: Exception = exc
            except (ex.ConnectionError, ex.HTTPClientError) as exc:
                last = exc
            except ex.BotoCoreError as exc:
                raise self._error(exc, op, table, physical) from exc
            if attempt >= self.max_retries:
                raise RetryBudgetExceededError(
                    f"DynamoDB {op} on {physical!r} for online table {table.name!r} still failed after "
                    f"{self.max_retries} retries ({last}). Raise max_retries or the table's capacity."
                ) from last
            self._sleep(attempt)
            attempt += 1

    # -- table management -------------------------------------------------------------------

    def _ensure_table(self, table: OnlineTable, physical: str) -> bool:
        """Create the table if missing and wait until it is ACTIVE; True when this call created it."""
        if physical in self._ready:
            return False
        created_here = False
        try:
            desc = self._call("describe_table", table, physical, TableName=physical)[0]["Table"]
        except OnlineTableNotFoundError:
            created = self._call(
                "create_table",
                table,
                physical,
                accept=frozenset({"ResourceInUseException"}),  # created meanwhile by someone else
                TableName=physical,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": PK, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": PK, "KeyType": "HASH"}],
            )[0]
            desc = created["TableDescription"] if created else {"TableStatus": "CREATING"}
            created_here = created is not None
        deadline = time.monotonic() + 600
        delay = 0.05
        while desc.get("TableStatus") != "ACTIVE":
            if time.monotonic() > deadline:
                raise OnlineStoreError(f"DynamoDB table {physical!r} did not become ACTIVE in 10 minutes.")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            desc = self._call("describe_table", table, physical, TableName=physical)[0]["Table"]
        if desc.get("KeySchema") not in (None, [{"AttributeName": PK, "KeyType": "HASH"}]):
            raise OnlineStoreError(
                f"DynamoDB table {physical!r} has key schema {desc['KeySchema']}; larder needs a table "
                f"whose only key is the string hash key {PK!r}. Use another table_name or table_prefix."
            )
        if self.ttl_seconds:
            ttl = self._call("describe_time_to_live", table, physical, TableName=physical)[0]
            status = ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
            if status not in ("ENABLED", "ENABLING"):
                self._call(
                    "update_time_to_live",
                    table,
                    physical,
                    TableName=physical,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES},
                )
        self._ready.add(physical)
        return created_here

    def drop_table(self, table: OnlineTable) -> None:
        physical = self.physical_name(table)
        self._ready.discard(physical)
        try:
            self._call("delete_table", table, physical, TableName=physical)
        except OnlineTableNotFoundError:
            return
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                self._call("describe_table", table, physical, TableName=physical)
            except OnlineTableNotFoundError:
                return
            time.sleep(0.2)

    # -- encoding items ---------------------------------------------------------------------

    @staticmethod
    def _attribute_values(col: pa.Array) -> tuple[list[dict[str, Any] | None], np.ndarray]:
        """DynamoDB attribute values of a column (None for nulls) and each value's size estimate."""
        n = len(col)
        kind = kind_of(col.type)
        valid = col.is_valid().to_numpy(zero_copy_only=False) if col.null_count else np.ones(n, bool)
        if kind == "bool":
            values = col.to_pylist()
            return [None if v is None else {"BOOL": v} for v in values], valid * 1
        text = to_text(col)
        sizes = pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False)
        values = text.to_pylist()
        st = storage_type(col.type)
        if kind == "binary":
            return [None if v is None else {"B": v} for v in values], sizes
        if kind == "int" or (kind == "decimal" and st.precision <= 38):
            return [None if v is None else {"N": v} for v in values], sizes // 2 + 2
        if kind == "float":
            x = np.abs(col.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False))
            as_number = np.isfinite(x) & (((x >= 1e-130) & (x < 1e126)) | (x == 0))
            upper = pc.utf8_upper(text).to_pylist()
            return [
                None if v is None else ({"N": u} if num else {"S": v})
                for v, u, num in zip(values, upper, as_number.tolist(), strict=True)
            ], sizes
        return [None if v is None else {"S": v} for v in values], sizes

    def _items(
        self, table: OnlineTable, physical: str, prepared: PreparedRows, gen: str | None = None
    ) -> list[dict[str, Any]]:
        """One DynamoDB item per prepared row; checks key and item sizes first."""
        n = prepared.num_rows
        pks = prepared.pk.to_pylist()
        key_bytes = pc.binary_length(prepared.pk).to_numpy(zero_copy_only=False) if n else np.zeros(0)
        if n and (key_bytes.max() > MAX_KEY_BYTES or key_bytes.min() == 0):
            i = int(np.argmax((key_bytes > MAX_KEY_BYTES) | (key_bytes == 0)))
            raise PrimaryKeyError(
                f"Online table {table.name!r}: key {self._key_repr(table, prepared, i)} encodes to "
                f"{int(key_bytes[i])} bytes; DynamoDB keys must be 1 to {MAX_KEY_BYTES} bytes."
            )
        sizes = key_bytes + 100  # _pk and its name, _order, _gen, _expires_at: at most ~100 bytes
        columns: list[tuple[str, list[dict[str, Any] | None]]] = []
        for source in (prepared.keys, prepared.features):
            for name in source.column_names:
                col = source.column(name).combine_chunks()
                if kind_of(col.type) == "null" or col.null_count == n:
                    continue
                values, value_sizes = self._attribute_values(col)
                valid = col.is_valid().to_numpy(zero_copy_only=False) if col.null_count else 1
                sizes = sizes + (value_sizes + len(name.encode())) * valid
                columns.append((name, values))
        if n and sizes.max() > MAX_ITEM_BYTES:
            i = int(np.argmax(sizes))
            raise ItemTooLargeError(
                f"Online table {table.name!r}: the item for key {self._key_repr(table, prepared, i)} "
                f"would take about {int(sizes[i]):,} bytes in DynamoDB table {physical!r}, over DynamoDB's "
                "400 KB item limit. Store large values elsewhere (for example a "
                "path or an id) or split the feature."
            )
        names = [name for name, _ in columns]
        orders = [str(o) for o in prepared.order.tolist()]
        extra: dict[str, Any] = {}
        if gen is not None:
            extra[GEN] = {"S": gen}
        if self.ttl_seconds:
            extra[EXPIRES] = {"N": str(int(time.time()) + self.ttl_seconds)}
        items = []
        rows = zip(*(v for _, v in columns), strict=True) if columns else itertools.repeat((), n)
        for pk, order, row_values in zip(pks, orders, rows, strict=False):
            item = {PK: {"S": pk}, ORDER: {"N": order}, **extra}
            for name, value in zip(names, row_values, strict=True):
                if value is not None:
                    item[name] = value
            items.append(item)
        return items

    @staticmethod
    def _key_repr(table: OnlineTable, prepared: PreparedRows, i: int) -> str:
        return repr({k: prepared.keys.column(k)[i].as_py() for k in table.primary_keys})

    # -- writes -----------------------------------------------------------------------------

    def _put_conditional(
        self, table: OnlineTable, physical: str, items: list[dict[str, Any]], gen: str | None = None
    ) -> int:
        names = {"#pk": PK, "#o": ORDER}
        condition = _CONDITION
        if gen is not None:
            names["#g"] = GEN
            condition = _CONDITION_REPLACE
        written = 0
        for item in items:
            values = {":o": item[ORDER]}
            if gen is not None:
                values[":g"] = {"S": gen}
            response, _ = self._call(
                "put_item",
                table,
                physical,
                accept=frozenset({"ConditionalCheckFailedException"}),  # a newer row is stored
                TableName=physical,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            written += response is not None
        return written

    def _batch_write(self, table: OnlineTable, physical: str, requests: list[dict[str, Any]]) -> int:
        """One BatchWriteItem of at most 25 requests, resending UnprocessedItems."""
        assert len(requests) <= MAX_BATCH_WRITE
        pending = {physical: requests}
        attempt = 0
        while True:
            response, attempt = self._call("batch_write_item", table, physical, attempt, RequestItems=pending)
            unprocessed = response.get("UnprocessedItems") or {}
            if not unprocessed.get(physical):
                return len(requests)
            if attempt >= self.max_retries:
                raise RetryBudgetExceededError(
                    f"DynamoDB BatchWriteItem on {physical!r} for online table {table.name!r}: "
                    f"{len(unprocessed[physical])} item(s) still unprocessed after {self.max_retries} "
                    "retries. Raise max_retries or the table's write capacity."
                )
            self._sleep(attempt)
            attempt += 1
            pending = unprocessed

    def _batch_get(
        self, table: OnlineTable, physical: str, pks: list[str], projection: dict[str, Any], consistent: bool
    ) -> list[dict[str, Any]]:
        """One BatchGetItem of at most 100 keys, resending UnprocessedKeys."""
        assert len(pks) <= MAX_BATCH_GET
        pending = {
            physical: {"Keys": [{PK: {"S": pk}} for pk in pks], "ConsistentRead": consistent, **projection}
        }
        items: list[dict[str, Any]] = []
        attempt = 0
        while True:
            response, attempt = self._call("batch_get_item", table, physical, attempt, RequestItems=pending)
            items.extend(response.get("Responses", {}).get(physical, []))
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(physical, {}).get("Keys"):
                return items
            if attempt >= self.max_retries:
                raise RetryBudgetExceededError(
                    f"DynamoDB BatchGetItem on {physical!r} for online table {table.name!r}: "
                    f"{len(unprocessed[physical]['Keys'])} key(s) still unprocessed after "
                    f"{self.max_retries} retries. Raise max_retries or the table's read capacity."
                )
            self._sleep(attempt)
            attempt += 1
            pending = unprocessed

    def _write_batched(self, table: OnlineTable, physical: str, items: list[dict[str, Any]]) -> int:
        chunks = [
            [{"PutRequest": {"Item": item}} for item in items[i : i + MAX_BATCH_WRITE]]
            for i in range(0, len(items), MAX_BATCH_WRITE)
        ]
        return sum(self._parallel(lambda c: self._batch_write(table, physical, c), chunks))

    def _write_conditional(
        self, table: OnlineTable, physical: str, items: list[dict[str, Any]], gen: str | None = None
    ) -> int:
        chunks = [items[i : i + _PUTS_PER_TASK] for i in range(0, len(items), _PUTS_PER_TASK)]
        return sum(self._parallel(lambda c: self._put_conditional(table, physical, c, gen), chunks))

    def _stored_orders(self, table: OnlineTable, physical: str, pks: list[str]) -> dict[str, int]:
        projection = {"ProjectionExpression": "#pk, #o", "ExpressionAttributeNames": {"#pk": PK, "#o": ORDER}}
        chunks = [pks[i : i + MAX_BATCH_GET] for i in range(0, len(pks), MAX_BATCH_GET)]
        stored: dict[str, int] = {}
        for items in self._parallel(lambda c: self._batch_get(table, physical, c, projection, True), chunks):
            for item in items:
                if ORDER in item:
                    stored[item[PK]["S"]] = int(item[ORDER]["N"])
        return stored

    def write_batch(self, table: OnlineTable, rows: pa.Table, *, order: str = ORDER_COLUMN,
                    publication: int | None = None) -> int:
        self._check(table)
        physical = self.physical_name(table)
        prepared = prepare_rows(table, rows, order)
        items = self._items(table, physical, prepared)
        self._ensure_table(table, physical)
        if not items:
            return 0
        if self.spec.write_mode == "conditional":
            return self._write_conditional(table, physical, items)
        stored = self._stored_orders(table, physical, [item[PK]["S"] for item in items])
        winners = [
            item
            for item, o in zip(items, prepared.order.tolist(), strict=True)
            if stored.get(item[PK]["S"], o) <= o
        ]
        return self._write_batched(table, physical, winners)

    def replace_table(
        self, table: OnlineTable, batches: Iterable[pa.Table], *, order: str = ORDER_COLUMN,
        publication: int | None = None,
    ) -> int:
        """Write every row stamped with a new ``_gen``, then delete the items without it.

        Not atomic (see the module docstring), so ``publication`` is not compared here: publish_table
        refuses an older version from the catalog's records."""
        self._check(table)
        physical = self.physical_name(table)
        gen = uuid.uuid4().hex
        seen: set[str] = set()
        ensured = created = False
        for batch in batches:
            prepared = prepare_rows(table, batch, order)
            items = self._items(table, physical, prepared, gen=gen)
            if not ensured:
                created = self._ensure_table(table, physical)
                ensured = True
            fresh = [item for item in items if item[PK]["S"] not in seen]
            again = [item for item in items if item[PK]["S"] in seen]
            self._write_batched(table, physical, fresh)
            if again:
                self._write_conditional(table, physical, again, gen)
            seen.update(item[PK]["S"] for item in items)
        if not ensured:
            created = self._ensure_table(table, physical)
        if not created:  # a table this replace created holds nothing stale
            self._delete_stale(table, physical, gen)
        return len(seen)

    def _delete_stale(self, table: OnlineTable, physical: str, gen: str) -> None:
        kwargs: dict[str, Any] = {
            "TableName": physical,
            "ProjectionExpression": "#pk",
            "FilterExpression": "attribute_not_exists(#g) OR #g <> :g",
            "ExpressionAttributeNames": {"#pk": PK, "#g": GEN},
            "ExpressionAttributeValues": {":g": {"S": gen}},
            "ConsistentRead": True,
        }
        while True:
            page = self._call("scan", table, physical, **kwargs)[0]
            stale = [{"DeleteRequest": {"Key": {PK: item[PK]}}} for item in page.get("Items", [])]
            chunks = [stale[i : i + MAX_BATCH_WRITE] for i in range(0, len(stale), MAX_BATCH_WRITE)]
            self._parallel(lambda c: self._batch_write(table, physical, c), chunks)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete_keys(self, table: OnlineTable, pks: Sequence[str]) -> None:
        """``BatchWriteItem`` delete requests, 25 keys each, in parallel (a missing table holds nothing)."""
        self._check(table)
        physical = self.physical_name(table)
        unique = list(dict.fromkeys(pks))
        requests = [{"DeleteRequest": {"Key": {PK: {"S": k}}}} for k in unique]
        chunks = [requests[i : i + MAX_BATCH_WRITE] for i in range(0, len(requests), MAX_BATCH_WRITE)]
        try:
            self._parallel(lambda c: self._batch_write(table, physical, c), chunks)
        except OnlineTableNotFoundError:
            return

    # -- reads ------------------------------------------------------------------------------

    def _fetch(self, table: OnlineTable, pks: list[str | None], names: list[str]) -> list[dict[str, Any] | None]:
        """The item of each key of ``pks`` in order (None where missing or expired)."""
        physical = self.physical_name(table)
        unique = list(dict.fromkeys(k for k in pks if k is not None))
        projection: dict[str, Any] = {}
        if names != table.features:
            attrs = [PK, EXPIRES, *names]
            projection = {
                "ProjectionExpression": ", ".join(f"#a{i}" for i in range(len(attrs))),
                "ExpressionAttributeNames": {f"#a{i}": a for i, a in enumerate(attrs)},
            }
        chunks = [unique[i : i + MAX_BATCH_GET] for i in range(0, len(unique), MAX_BATCH_GET)]
        consistent = self.spec.consistent_reads
        results = self._parallel(
            lambda c: self._batch_get(table, physical, c, projection, consistent), chunks
        )
        now = time.time()
        by_pk: dict[str, dict[str, Any]] = {}
        for item in itertools.chain.from_iterable(results):
            expires = item.get(EXPIRES)
            if expires is not None and float(expires["N"]) <= now:
                continue  # expired; DynamoDB deletes it later
            by_pk[item[PK]["S"]] = item
        return [by_pk.get(pk) if pk is not None else None for pk in pks]

    def read_values(
        self, table: OnlineTable, pks: Sequence[str | None], features: list[str] | None = None
    ) -> ValueBatch:
        """``BatchGetItem`` of the distinct keys (100 per request, in parallel), each item decoded into
        Arrow columns (the network round trip dominates a DynamoDB read), then numbers moved into blocks."""
        names = read_plan(table, features).names
        ordered = self._fetch(table, list(pks), names)
        found = np.fromiter((item is not None for item in ordered), dtype=bool, count=len(ordered))
        return ValueBatch.from_arrow(typed_table(table, names, self._decode(table, names, ordered), len(ordered)), found)

    @staticmethod
    def _decode(
        table: OnlineTable, names: list[str], items: list[dict[str, Any] | None]
    ) -> dict[str, pa.Array]:
        n = len(items)
        out: dict[str, pa.Array] = {}
        for t, idx in read_plan(table, names).groups:
            group = [names[i] for i in idx]
            kind = kind_of(t)
            if kind == "null":
                for name in group:
                    out[name] = pa.nulls(n, t)
                continue
            flat: list[Any] = []
            for name in group:
                flat.extend(
                    None if item is None or (av := item.get(name)) is None else next(iter(av.values()))
                    for item in items
                )
            raw_type = pa.bool_() if kind == "bool" else pa.binary() if kind == "binary" else pa.string()
            try:
                parsed = (
                    from_text(pa.array(flat, raw_type), storage_type(t))
                    if kind != "bool"
                    else pa.array(flat, pa.bool_())
                )
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise OnlineStoreError(
                    f"Online table {table.name!r}: stored values of {group} cannot be read as {t}: "
                    f"{exc}. Republish the table in overwrite mode."
                ) from exc
            for c, name in enumerate(group):
                out[name] = parsed.slice(c * n, n)
        return out

    def close(self) -> None:
        self._closed = True
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
