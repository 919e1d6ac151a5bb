"""Feature-function registry: versions, storage without the defining module, usage guard, execution."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from larder.catalog.functions import function_versions_in_use, record_function_usage
from larder.errors import FunctionError, FunctionExecutionError, FunctionInUseError, FunctionNotFoundError
from larder.training import apply_functions
from larder.training.execute import FunctionRunner
from larder.training.spec import FeatureSpec, FunctionStep

BASE_YEAR = 2024


def house_age(year_built: int) -> int:
    return BASE_YEAR - year_built


def fill_quality(x: float | None) -> float:
    return x if x is not None else 5.0


def _step(info, bindings, output):  # type: ignore[no-untyped-def]
    return FunctionStep(
        name=info.name, version=info.version, input_bindings=bindings, output_name=output,
        python_name=info.python_name, source=info.source, code=info.code, parameters=info.parameters,
        return_type=info.return_type, output_type=info.output_type, mode=info.mode,
        environment=info.environment, pickle=info.pickle,
    )


def test_register_get_list_and_idempotent_versions(fe) -> None:
    info = fe.create_function("house_age", house_age, description="years since built")
    assert info.name == "main.default.house_age"
    assert info.signature == "(year_built: int) -> int"
    assert info.return_type == "int" and info.output_type == "int64"
    assert info.source.startswith("def house_age(year_built: int) -> int:")
    assert info.description == "years since built"
    assert info.func(2000) == 24
    again = fe.create_function("default.house_age", house_age)
    assert again.version == info.version and again.versions == [info.version]
    assert fe.get_function("main.default.house_age").version == info.version
    fe.create_function("ml.prod.fill_quality", fill_quality)
    assert [f.name for f in fe.list_functions()] == ["main.default.house_age", "ml.prod.fill_quality"]
    assert [f.name for f in fe.list_functions("fill_*")] == ["ml.prod.fill_quality"]


def _load(path: Path, src: str):  # type: ignore[no-untyped-def]
    import importlib.util

    path.write_text(src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_new_code_new_version_formatting_does_not_matter(fe, tmp_path: Path) -> None:
    variants = {
        "v1": "def f(x: int) -> int:\n    return x + 1\n",
        "v1_reformatted": "def f(x:int)->int:\n    # a comment\n    return (x + 1)\n",
        "v2": "def f(x: int) -> int:\n    return x + 2\n",
    }
    versions = {}
    for key, src in variants.items():
        versions[key] = fe.create_function("f", _load(tmp_path / f"mod_{key}.py", src).f).version
    assert versions["v1"] == versions["v1_reformatted"]
    assert versions["v2"] != versions["v1"]
    info = fe.get_function("f")
    assert info.version == versions["v2"] and info.versions == [versions["v1"], versions["v2"]]
    assert fe.get_function("f", versions["v1"]).func(1) == 2
    assert info.func(1) == 3
    # re-registering old code returns the old version, and the current version stays the newest
    assert fe.create_function("f", _load(tmp_path / "again.py", variants["v1"]).f).version == versions["v1"]
    assert fe.get_function("f").version == versions["v2"]


def test_constants_read_by_the_function_are_part_of_the_version(fe, tmp_path: Path) -> None:
    for base in (2024, 2030):
        src = f"BASE = {base}\ndef age(y: int) -> int:\n    return BASE - y\n"
        fe.create_function("age", _load(tmp_path / f"consts_{base}.py", src).age)
    info = fe.get_function("age")
    assert len(info.versions) == 2
    assert info.environment["constants"] == {"BASE": 2030}
    assert info.func(2000) == 30


def test_drop_function_refused_while_a_model_uses_it(fe) -> None:
    v1 = fe.create_function("fq", fill_quality).version
    v2 = fe.create_function("fq", house_age).version
    with fe._ctx.catalog.session() as s:
        record_function_usage(s, "main.default.price_model", 3, [("main.default.fq", v1)])
        record_function_usage(s, "main.default.price_model", 3, [("main.default.fq", v1)])  # idempotent
    with fe._ctx.catalog.session() as s:
        assert function_versions_in_use(s, "main.default.fq") == {v1: [("main.default.price_model", "3")]}
    with pytest.raises(FunctionInUseError, match=r"price_model.*version 3"):
        fe.drop_function("fq")
    with pytest.raises(FunctionInUseError, match=v1):
        fe.drop_function("fq", v1)
    fe.drop_function("fq", v2)  # unused version: fine
    assert fe.get_function("fq").versions == [v1]
    with pytest.raises(FunctionNotFoundError, match="no version"):
        fe.drop_function("fq", "0123456789abcdef")
    fe.create_function("other", house_age)
    fe.drop_function("other")
    with pytest.raises(FunctionNotFoundError, match="does not exist"):
        fe.get_function("other")


def test_bad_functions_are_refused(fe) -> None:
    def star(*cols):  # type: ignore[no-untyped-def]
        return cols

    def pos_only(x, /):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(FunctionError, match="named parameters"):
        fe.create_function("star", star)
    with pytest.raises(FunctionError, match="positional-only"):
        fe.create_function("pos", pos_only)
    with pytest.raises(FunctionError, match="Python function"):
        fe.create_function("sqrt", math.sqrt)
    with pytest.raises(FunctionError, match="mode"):
        fe.create_function("ha", house_age, mode="fast")
    with pytest.raises(FunctionNotFoundError, match="house_age"):
        fe.get_function("house_age")


def test_lambda_and_module_imports_survive_exec_fallback(fe) -> None:
    info = fe.create_function("double_log", lambda x: math.log(x) * 2)
    assert info.environment["imports"] == {"math": "math"}
    step = _step(info, {"x": "v"}, "out")
    broken = FunctionStep(**{**step.__dict__, "pickle": b"not a pickle"})
    out = apply_functions([broken], pd.DataFrame({"v": [1.0, math.e]}))
    assert out["out"].tolist() == [0.0, 2.0]


def _write_module(tmp_path: Path) -> Path:
    mod_dir = tmp_path / "userpkg"
    mod_dir.mkdir()
    (mod_dir / "my_features_mod.py").write_text(textwrap.dedent("""
        import math

        SCALE = 10

        def helper_free(x: float) -> float:
            return round(math.sqrt(x) * SCALE, 6)
    """))
    return mod_dir


def test_function_runs_without_its_module(fe, tmp_path: Path, larder_root: Path) -> None:
    mod_dir = _write_module(tmp_path)
    sys.path.insert(0, str(mod_dir))
    try:
        import my_features_mod  # type: ignore[import-not-found]

        info = fe.create_function("scaled_sqrt", my_features_mod.helper_free)
    finally:
        sys.path.remove(str(mod_dir))
        sys.modules.pop("my_features_mod", None)
    spec = FeatureSpec(steps=[_step(info, {"x": "v"}, "s")])
    spec_path = spec.save(tmp_path / "spec.yaml")
    no_pickle = FeatureSpec(steps=[FunctionStep(**{**spec.steps[0].__dict__, "pickle": None})])
    no_pickle_path = no_pickle.save(tmp_path / "spec_source_only.yaml")
    script = textwrap.dedent(f"""
        import json, sys
        import pandas as pd
        assert "my_features_mod" not in sys.modules
        try:
            import my_features_mod
            raise SystemExit("module should not be importable")
        except ImportError:
            pass
        from larder.client import FeatureEngineeringClient
        from larder.training import FeatureSpec, apply_functions
        fe = FeatureEngineeringClient(root={str(larder_root)!r})
        f = fe.get_function("scaled_sqrt").func
        frame = pd.DataFrame({{"v": [4.0, 9.0]}})
        a = apply_functions(FeatureSpec.load({str(spec_path)!r}), frame)["s"].tolist()
        b = apply_functions(FeatureSpec.load({str(no_pickle_path)!r}), frame)["s"].tolist()
        print(json.dumps([f(16.0), a, b]))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == [40.0, [20.0, 30.0], [20.0, 30.0]]


class TestRunner:
    def run(self, func, mode="auto", out_type=None, **cols):  # type: ignore[no-untyped-def]
        import pyarrow as pa

        runner = FunctionRunner(func, name="main.default.f", version="v1", mode=mode,
                                output_type=pa.type_for_alias(out_type) if out_type else None)
        n = len(next(iter(cols.values())))
        return runner({k: pd.Series(v) for k, v in cols.items()}, n,
                      pd.DataFrame({"Id": range(100, 100 + n)})).tolist()

    def test_vectorised_and_row_results_agree(self) -> None:
        calls = []

        def f(x):  # type: ignore[no-untyped-def]
            calls.append(type(x))
            return x * 2

        assert self.run(f, x=[1.0, 2.0, 3.0], out_type="double") == [2.0, 4.0, 6.0]
        assert calls[0] is pd.Series

    def test_truthiness_trap_falls_back_to_row_by_row(self) -> None:
        def f(x):  # type: ignore[no-untyped-def]
            return x if x is not None else 5.0

        assert self.run(f, x=[1.0, np.nan, 3.0], out_type="double") == [1.0, 5.0, 3.0]

    def test_scalar_result_and_series_error_fall_back(self) -> None:
        assert self.run(lambda x: 7, x=[1, 2]) == [7, 7]
        assert self.run(lambda x: 1 if x > 1 else 0, x=[1, 2, 3]) == [0, 1, 1]

    def test_row_mode_sees_python_values_and_none(self) -> None:
        seen = []

        def f(x, s):  # type: ignore[no-untyped-def]
            seen.append((x, s))
            return None if x is None else f"{s}:{x}"

        out = self.run(f, mode="row", x=[1.0, None], s=["a", "b"])
        assert out[0] == "a:1.0" and pd.isna(out[1])
        assert seen == [(1.0, "a"), (None, "b")]

    def test_vectorized_mode_requires_series_support(self) -> None:
        with pytest.raises(FunctionExecutionError, match="mode='vectorized'"):
            self.run(lambda x: 1, mode="vectorized", x=[1, 2])

    def test_error_names_function_version_row_and_keys(self) -> None:
        def f(x):  # type: ignore[no-untyped-def]
            if x == 3:
                raise ValueError("three is bad")
            return x

        with pytest.raises(FunctionExecutionError) as err:
            self.run(f, mode="row", x=[1, 2, 3])
        msg = str(err.value)
        assert "'main.default.f' (version v1)" in msg and "row 2" in msg and "'Id': 102" in msg
        assert "three is bad" in msg

    def test_wrong_return_type(self) -> None:
        with pytest.raises(FunctionExecutionError, match="declared return type"):
            self.run(lambda x: "abc", mode="row", out_type="int64", x=[1])
