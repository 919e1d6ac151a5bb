"""The declarative preprocessor schema (validated with pydantic; unknown keys are errors).

A spec is a mapping. Its keys are column names, each mapped to one step or a list of steps (a
pipeline, applied in order), plus a few reserved keys for transforms over several columns::

    Neighborhood: ["rare:0.01", "onehot"]          # a pipeline of two steps
    GrLivArea: standard                            # one step, shorthand
    YearBuilt: {bins: {n_bins: 5, strategy: quantile}}
    MoSold: "cyclical:12"
    ratio: [[GrLivArea, TotRmsAbvGrd]]             # reserved: column pairs -> "GrLivArea/TotRmsAbvGrd"
    diff: [[YearRemodAdd, YearBuilt]]              # "YearRemodAdd-YearBuilt"
    product: [[OverallQual, GrLivArea]]            # "OverallQual*GrLivArea"
    interactions: {columns: [a, b, c], degree: 2}  # PolynomialFeatures(interaction_only=True)
    remainder: drop                                # or passthrough (columns not named anywhere)
    columns: {ratio: standard}                     # escape hatch for columns named like a reserved key

A step is written as ``"name"``, ``"name:arg"`` (shorthand for the step's main parameter) or
``{name: {param: value, ...}}``. See :data:`STEP_KINDS` and ``docs/feature-engineering.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from larder.errors import TransformError

RESERVED_KEYS = ("columns", "ratio", "diff", "product", "interactions", "remainder")

#: A frequency threshold: a row count (int >= 1) or a share of the rows (float in (0, 1)).
Frequency = Annotated[int, Field(ge=1)] | Annotated[float, Field(gt=0, lt=1)]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StandardStep(_Step):
    """``standard``: :class:`sklearn.preprocessing.StandardScaler`; output ``{col}_scaled``."""

    kind: Literal["standard"] = "standard"
    with_mean: bool = True
    with_std: bool = True


class MinMaxStep(_Step):
    """``minmax``: :class:`sklearn.preprocessing.MinMaxScaler`; output ``{col}_scaled``."""

    kind: Literal["minmax"] = "minmax"
    feature_range: tuple[float, float] = (0.0, 1.0)
    clip: bool = False


class RobustStep(_Step):
    """``robust``: :class:`sklearn.preprocessing.RobustScaler`; output ``{col}_scaled``."""

    kind: Literal["robust"] = "robust"
    with_centering: bool = True
    with_scaling: bool = True
    quantile_range: tuple[float, float] = (25.0, 75.0)


class OneHotStep(_Step):
    """``onehot``: :class:`sklearn.preprocessing.OneHotEncoder`; outputs ``{col}={category}``.

    Unseen categories encode as all zeros (``handle_unknown="ignore"``), or as the
    ``{col}=infrequent_sklearn`` column when ``min_frequency``/``max_categories`` is set.
    """

    kind: Literal["onehot"] = "onehot"
    min_frequency: Frequency | None = None
    max_categories: Annotated[int, Field(ge=2)] | None = None
    drop: Literal["first", "if_binary"] | None = None


class OrdinalStep(_Step):
    """``ordinal``: :class:`sklearn.preprocessing.OrdinalEncoder`; output ``{col}_ordinal``.

    Unseen categories and missing values encode as ``unknown_value`` (default -1).
    """

    kind: Literal["ordinal"] = "ordinal"
    unknown_value: float = -1


class TargetStep(_Step):
    """``target``: :class:`sklearn.preprocessing.TargetEncoder`; output ``{col}_target``.

    ``fit_transform`` is cross-fitted (``cv`` folds), so training rows never see their own target.
    Unseen categories encode as the global target mean. Needs ``y``.
    """

    kind: Literal["target"] = "target"
    target_type: Literal["auto", "continuous", "binary", "multiclass"] = "auto"
    smooth: Literal["auto"] | Annotated[float, Field(ge=0)] = "auto"
    cv: Annotated[int, Field(ge=2)] = 5
    random_state: int | None = 0


class BinsStep(_Step):
    """``bins``: :class:`sklearn.preprocessing.KBinsDiscretizer`; output ``{col}_bin``.

    ``encode: onehot`` one-hot encodes the bin index instead: ``{col}_bin=0``, ``{col}_bin=1``, ...
    """

    kind: Literal["bins"] = "bins"
    n_bins: Annotated[int, Field(ge=2)] = 5
    strategy: Literal["uniform", "quantile", "kmeans"] = "quantile"
    encode: Literal["ordinal", "onehot"] = "ordinal"


class RareStep(_Step):
    """``rare``: :class:`larder.transforms.RareCategoryGrouper`; keeps the column name."""

    kind: Literal["rare"] = "rare"
    min_frequency: Frequency = 0.01
    other_label: str = "__rare__"


class CyclicalStep(_Step):
    """``cyclical``: :class:`larder.transforms.CyclicalEncoder`; outputs ``{col}_sin``, ``{col}_cos``."""

    kind: Literal["cyclical"] = "cyclical"
    period: Annotated[float, Field(gt=0)] | None = None
    parts: tuple[Literal["month", "day", "dayofweek", "dayofyear", "hour", "minute", "second"], ...] = (
        "month",
        "dayofweek",
    )


class ImputeStep(_Step):
    """``impute``: :class:`sklearn.impute.SimpleImputer`; keeps the column name."""

    kind: Literal["impute"] = "impute"
    strategy: Literal["mean", "median", "most_frequent", "constant"] = "median"
    fill_value: str | float | None = None


class PassthroughStep(_Step):
    """``passthrough``: the column unchanged (useful with ``remainder: drop``)."""

    kind: Literal["passthrough"] = "passthrough"


Step = Annotated[
    StandardStep
    | MinMaxStep
    | RobustStep
    | OneHotStep
    | OrdinalStep
    | TargetStep
    | BinsStep
    | RareStep
    | CyclicalStep
    | ImputeStep
    | PassthroughStep,
    Field(discriminator="kind"),
]

#: Step name -> (model, the parameter that the ``"name:arg"`` shorthand sets, or None).
STEP_KINDS: dict[str, tuple[type[_Step], str | None]] = {
    "standard": (StandardStep, None),
    "minmax": (MinMaxStep, None),
    "robust": (RobustStep, None),
    "onehot": (OneHotStep, "min_frequency"),
    "ordinal": (OrdinalStep, None),
    "target": (TargetStep, "smooth"),
    "bins": (BinsStep, "n_bins"),
    "rare": (RareStep, "min_frequency"),
    "cyclical": (CyclicalStep, "period"),
    "impute": (ImputeStep, "strategy"),
    "passthrough": (PassthroughStep, None),
}


def _parse_step(raw: Any, column: str) -> dict[str, Any]:
    """Turn one shorthand step into a dict with a ``kind`` key."""
    known = ", ".join(sorted(STEP_KINDS))
    if isinstance(raw, BaseModel):
        return raw.model_dump()
    if isinstance(raw, str):
        name, sep, arg = raw.partition(":")
        name = name.strip()
        if name not in STEP_KINDS:
            raise ValueError(f"column {column!r}: unknown step {name!r}; known steps: {known}")
        out: dict[str, Any] = {"kind": name}
        if sep:
            param = STEP_KINDS[name][1]
            if param is None:
                raise ValueError(f"column {column!r}: step {name!r} takes no ':argument' (got {raw!r})")
            out[param] = arg.strip()
        return out
    if isinstance(raw, dict):
        if "kind" in raw:
            return dict(raw)
        if len(raw) != 1:
            raise ValueError(
                f"column {column!r}: a step mapping has exactly one key, the step name (got {list(raw)}); "
                "chain several steps with a list"
            )
        ((name, params),) = raw.items()
        if name not in STEP_KINDS:
            raise ValueError(f"column {column!r}: unknown step {name!r}; known steps: {known}")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            param = STEP_KINDS[name][1]
            if param is None:
                raise ValueError(f"column {column!r}: step {name!r} takes a mapping of parameters")
            params = {param: params}
        return {"kind": name, **params}
    raise ValueError(f"column {column!r}: a step is a string or a one-key mapping, got {type(raw).__name__}")


class InteractionsSpec(BaseModel):
    """``interactions``: products of the listed columns up to ``degree`` (PolynomialFeatures)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[str] = Field(min_length=2)
    degree: Annotated[int, Field(ge=2)] = 2


class PreprocessorSpec(BaseModel):
    """A validated preprocessor spec. Build one with :meth:`parse` (accepts the flat form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, list[Step]] = Field(default_factory=dict)
    ratio: list[tuple[str, str]] = Field(default_factory=list)
    diff: list[tuple[str, str]] = Field(default_factory=list)
    product: list[tuple[str, str]] = Field(default_factory=list)
    interactions: InteractionsSpec | None = None
    remainder: Literal["drop", "passthrough"] = "drop"

    @field_validator("columns", mode="before")
    @classmethod
    def _expand_steps(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, list[dict[str, Any]]] = {}
        for column, steps in value.items():
            raw = steps if isinstance(steps, list | tuple) else [steps]
            if not raw:
                raise ValueError(f"column {column!r}: give at least one step")
            out[str(column)] = [_parse_step(s, str(column)) for s in raw]
        return out

    @model_validator(mode="after")
    def _not_empty(self) -> PreprocessorSpec:
        if not (self.columns or self.ratio or self.diff or self.product or self.interactions):
            if self.remainder != "passthrough":
                raise ValueError("the spec transforms no column; name at least one column or interaction")
        return self

    @classmethod
    def parse(cls, spec: PreprocessorSpec | dict[str, Any] | str | Path) -> PreprocessorSpec:
        """Validate a spec given as a mapping, a YAML string or a YAML file path.

        Top-level keys that are not reserved (:data:`RESERVED_KEYS`) are column names.

        Raises
        ------
        TransformError
            If the YAML cannot be read or the spec is invalid (the message lists every problem).
        """
        if isinstance(spec, PreprocessorSpec):
            return spec
        data = _load(spec)
        columns = dict(data.get("columns") or {})
        if "columns" in data and not isinstance(data["columns"], dict):
            raise TransformError("preprocessor spec: 'columns' must map column names to steps.")
        flat = {k: v for k, v in data.items() if k not in RESERVED_KEYS}
        dupes = sorted(set(flat) & set(columns))
        if dupes:
            raise TransformError(
                f"preprocessor spec: column(s) {dupes} are given twice (top level and 'columns')."
            )
        columns.update(flat)
        body = {k: v for k, v in data.items() if k in RESERVED_KEYS}
        body["columns"] = columns
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<spec>'}: {err['msg']}" for err in exc.errors()
            )
            raise TransformError(f"invalid preprocessor spec: {problems}") from exc


def _load(spec: dict[str, Any] | str | Path) -> dict[str, Any]:
    import yaml

    if isinstance(spec, dict):
        return spec
    if isinstance(spec, Path) or (
        isinstance(spec, str) and "\n" not in spec and spec.strip().endswith((".yaml", ".yml", ".json"))
    ):
        path = Path(spec)
        if not path.is_file():
            raise TransformError(f"preprocessor spec file {str(path)!r} does not exist.")
        text = path.read_text(encoding="utf-8")
    elif isinstance(spec, str):
        text = spec
    else:
        raise TransformError(
            f"preprocessor spec must be a dict, a YAML string or a path, got {type(spec).__name__}."
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TransformError(f"preprocessor spec is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TransformError(
            "preprocessor spec must be a mapping of column -> step(s), e.g. 'GrLivArea: standard'; "
            f"got {type(data).__name__}."
        )
    return data
