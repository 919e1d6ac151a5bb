"""The JSON shapes of the web catalog's API (``/api/...``), as pydantic models.

Every page of the UI is rendered from one of these, and the same object is what its ``/api/`` route
returns, so the OpenAPI document (``/openapi.json``) describes exactly what the pages show. Times are
UTC; values that JSON cannot hold (NaN, infinities) are ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from larder.quality.drift import DriftReport
from larder.quality.profiling import Profile
from larder.quality.validation import ValidationResult


class _Model(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="null")


# ---------------------------------------------------------------------------------------------- tables
class TableSummary(_Model):
    """One row of the table list."""

    name: str = Field(description="Full name, catalog.schema.table.")
    description: str | None = None
    primary_keys: list[str]
    entity_keys: list[str] = Field(description="Primary keys without the timestamp key.")
    timestamp_key: str | None = None
    owner: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    features: int = Field(description="Number of columns that are not keys.")
    rows: int | None = Field(None, description="Rows at the latest version (null until recorded).")
    version: int | None = Field(None, description="Latest Delta version (null until recorded).")
    last_write: datetime | None = Field(None, description="When the latest version was written.")
    matches: list[str] = Field(default_factory=list,
                               description="Where the search terms matched (name, description, feature X, tag k=v).")


class TableList(_Model):
    query: str = ""
    sort: str
    order: Literal["asc", "desc"]
    offset: int
    limit: int
    total: int = Field(description="Tables matching the query (all pages).")
    catalog_tables: int = Field(description="Tables in the catalog.")
    stats_pending: int = Field(0, description="Tables whose row count and version are still being recorded.")
    tables: list[TableSummary]


class Column(_Model):
    name: str
    dtype: str
    description: str | None = None
    is_primary_key: bool = False
    is_timestamp_key: bool = False
    is_partition_column: bool = False
    added_in_version: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class VersionEntry(_Model):
    version: int
    timestamp: datetime | None = None
    operation: str | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_deleted: int | None = None
    rows: int | None = Field(None, description="Rows written (profiled) by this version's write, when known.")
    validation: Literal["passed", "failed"] | None = None


class Preview(_Model):
    """The first rows of the table at one Delta version (time travel)."""

    version: int
    total_rows: int
    columns: list[str]
    rows: list[list[Any]]


class ModelRef(_Model):
    name: str = Field(description="Registered name, or the runs:/ URI of an unregistered model.")
    version: str | None = None
    uri: str
    link: str = Field(description="Path of the model's page in the UI.")
    table_version: int | None = Field(None, description="Delta version of the table the model was trained on.")


class PublicationView(_Model):
    table: str
    store: str = Field(description="The store's display name (larder.yaml name, else type and location).")
    store_key: str = Field(description="The store's identity (as in StoreView.key).")
    store_type: str
    online_table_name: str
    features: list[str]
    delta_version: int
    published_at: datetime
    rows: int
    mode: str
    filter_condition: str | None = None
    duration_s: float | None = None
    offline_version: int | None = Field(None, description="The offline table's latest Delta version.")
    offline_written_at: datetime | None = None
    versions_behind: int | None = None
    staleness_s: float | None = Field(
        None, description="Seconds by which the offline table's latest write is newer than the publication "
        "(0 when the publication has the latest version).")
    status: Literal["current", "stale", "unknown"]


class EditEntry(_Model):
    object_kind: str
    object_name: str
    field: str
    old_value: Any = None
    new_value: Any = None
    edited_by: str
    edited_at: datetime


class TableDetail(_Model):
    name: str
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    primary_keys: list[str]
    timestamp_key: str | None = None
    partition_columns: list[str] = Field(default_factory=list)
    path: str
    created_at: datetime
    updated_at: datetime
    latest_version: int
    rows: int = Field(description="Rows at the latest version.")
    version: int = Field(description="The version shown (columns and preview).")
    columns: list[Column]
    history: list[VersionEntry] = Field(description="Newest first.")
    preview: Preview
    models: list[ModelRef] = Field(default_factory=list, description="Logged models that read this table.")
    publications: list[PublicationView] = Field(default_factory=list)
    edits: list[EditEntry] = Field(default_factory=list)
    editable: bool = False


class ValidationEntry(_Model):
    version: int
    passed: bool
    policy: str
    row_count: int
    failed_count: int
    created_at: datetime


class QualityView(_Model):
    name: str
    version: int | None = Field(None, description="The version whose profile is shown.")
    profiled_versions: list[int]
    profile: Profile | None = None
    policy: str
    expectations: list[str] = Field(description="Each expectation, described.")
    validations: list[ValidationEntry] = Field(description="Every stored validation run, oldest first.")
    validation: ValidationResult | None = Field(None, description="The latest validation run (details).")
    validation_version: int | None = None


class DriftView(_Model):
    name: str
    versions: list[int] = Field(description="Every version of the table, oldest first.")
    baseline: int
    current: int
    report: DriftReport


# ------------------------------------------------------------------------------------------- functions
class FunctionSummary(_Model):
    name: str
    description: str | None = None
    owner: str | None = None
    version: str = Field(description="The current (latest registered) version.")
    versions: int
    signature: str
    created_at: datetime
    models: int = Field(description="Logged model versions that use some version of it.")


class FunctionVersionView(_Model):
    version: str
    current: bool
    created_at: datetime
    signature: str
    description: str | None = None
    mode: str
    output_type: str | None = None
    python_version: str
    source: str
    models: list[ModelRef] = Field(default_factory=list)


class FunctionDetail(_Model):
    name: str
    description: str | None = None
    owner: str | None = None
    versions: list[FunctionVersionView] = Field(description="Newest first.")


# ----------------------------------------------------------------------------------------------- specs
class LookupView(_Model):
    table: str
    table_version: int | None = None
    lookup_key: list[str]
    timestamp_lookup_key: str | None = None
    lookback_window_s: float | None = None
    features: list[str]
    output_names: list[str]
    feature_types: list[str]
    default_values: dict[str, Any] = Field(default_factory=dict)


class FunctionStepView(_Model):
    name: str
    version: str
    input_bindings: dict[str, str]
    output_name: str


class FeatureStepView(_Model):
    """A declarative feature pinned in a spec."""

    name: str
    output_name: str
    output_type: str
    source_table: str | None = None
    source_version: int | None = None
    function: str


class SpecView(_Model):
    """A feature spec: ordered lookups and functions with pinned versions."""

    name: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    input_columns: list[str]
    output_columns: list[str]
    exclude_columns: list[str] = Field(default_factory=list)
    lookups: list[LookupView]
    functions: list[FunctionStepView]
    features: list[FeatureStepView] = Field(default_factory=list, description="Declarative features.")
    yaml: str | None = None


# ------------------------------------------------------------------------------- declarative features
class DeclarativeFeatureView(_Model):
    """A registered declarative feature: source, function over a time window, entity and time column."""

    name: str
    description: str | None = None
    owner: str | None = None
    source_table: str | None = Field(None, description="The source feature table (None for a request source).")
    source_version: int | None = Field(None, description="The source's Delta version when it was registered.")
    source: dict[str, Any]
    entity: list[str]
    timeseries_column: str | None = None
    function: str = Field(description="The function, as Python would build it.")
    output_type: str | None = None
    created_at: datetime
    models: list[ModelRef] = Field(default_factory=list, description="Logged models that use it.")
    definition: dict[str, Any] = Field(description="Feature.to_dict(), as stored in the catalog.")


# ---------------------------------------------------------------------------------------------- models
class ModelSummary(_Model):
    name: str
    version: str | None = None
    uri: str
    run_uri: str
    link: str
    logged_at: datetime
    owner: str | None = None
    flavor: str
    tables: list[str]
    features: int
    functions: int


class ModelList(_Model):
    total: int
    models: list[ModelSummary]


class ModelTableView(_Model):
    name: str
    delta_version: int | None = None
    online_store: str | None = Field(None, description="Where the table was published when the model was logged.")
    online: dict[str, Any] | None = None


class ModelDetail(_Model):
    name: str
    version: str | None = None
    uri: str
    run_uri: str
    model_uri: str
    run_id: str
    flavor: str
    tracking_uri: str
    logged_at: datetime
    owner: str | None = None
    input_columns: list[str]
    feature_columns: list[str]
    labels: list[str]
    tables: list[ModelTableView]
    spec: SpecView
    other_versions: list[ModelRef] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------- online
class StoreView(_Model):
    key: str = Field(description="Stable identity of the store (anchor on the online page).")
    name: str
    store_type: str
    spec: dict[str, Any]
    publications: list[PublicationView]


class OnlineView(_Model):
    stores: list[StoreView]
    stale: int = Field(description="Publications behind their offline table.")


# --------------------------------------------------------------------------------------------- lineage
NodeKind = Literal["table", "feature", "function", "spec", "model", "store"]


class LineageNode(_Model):
    id: str
    kind: NodeKind
    label: str
    detail: str | None = None
    link: str | None = Field(None, description="Path of the node's page in the UI.")
    x: float = 0
    y: float = 0


class LineageEdge(_Model):
    source: str
    target: str
    label: str | None = None
    route: list[list[float]] = Field(default_factory=list,
                                     description="Points [x, y] the drawn edge passes, left to right.")


class LineageGraph(_Model):
    focus: str | None = None
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    width: float = 0
    height: float = 0
    total_nodes: int = Field(description="Nodes in the whole catalog graph.")
    truncated: bool = Field(False, description="True when the graph is too large to draw without a focus.")


# ----------------------------------------------------------------------------------------------- edits
class TableEdit(_Model):
    """Changes to a feature table's metadata; fields left out are unchanged."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    owner: str | None = None
    tags: dict[str, str | None] | None = Field(None, description="Tags to set; a null value deletes the tag.")
    feature_descriptions: dict[str, str] | None = None


class EditResult(_Model):
    name: str
    changes: list[EditEntry]


class EditList(_Model):
    edits: list[EditEntry]


class Health(_Model):
    status: Literal["ok"]
    root: str
    tables: int
    editable: bool


__all__ = [name for name in dir() if name[0].isupper() and name not in ("Any", "BaseModel", "ConfigDict", "Field",
                                                                          "Literal")]
