"""``larder doctor``: check a deployment end to end and say what is wrong and how to fix it.

:func:`diagnose` runs, in order, and without creating anything but a probe object it deletes again:

* **config**: ``larder.yaml`` parses (the other checks need it);
* **catalog**: reachable, and its schema at this larder's revision (else: ``larder catalog upgrade``,
  or a newer larder);
* **storage**: the storage root is writable (a probe object is written, read back and deleted);
* **online**: every online store in ``larder.yaml`` and every store a live publication points to
  answers (SQLite: the file opens; DynamoDB: ``ListTables``; Redis: ``PING``);
* **mlflow**: the tracking URI in effect answers (a server's ``/health`` and its REST API, and the
  artifact store it proxies; a local SQLite database opens);
* **consistency**: :func:`larder.offline.reconcile.find_problems` (what a crash left behind); with
  ``repair=True`` the repairable ones are fixed with :func:`~larder.offline.reconcile.repair` and
  reported as repaired;
* **push**: pushes (``to="both"``) whose online write did not finish (:meth:`Pusher.pending
  <larder.online.push.Pusher.pending>`: committed to Delta, not every store written); with
  ``repair=True`` they are completed (:meth:`Pusher.complete <larder.online.push.Pusher.complete>`).

Each finding is a :class:`Check`; ``status`` is ``ok``, ``warn`` (works, but look) or ``fail``.

Example::

    from larder.doctor import diagnose
    for check in diagnose("/srv/larder"):
        print(check.status, check.area, check.target, check.detail, check.fix)
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from larder.errors import LarderError
from larder.redaction import redact_text, redact_url

if TYPE_CHECKING:
    from larder.context import Context

Status = Literal["ok", "warn", "fail"]

#: The delta-rs option that commits to S3 without conditional put (unsafe with concurrent writers).
UNSAFE_RENAME = "AWS_S3_ALLOW_UNSAFE_RENAME"

#: Seconds any one network check waits for an answer.
TIMEOUT_S = 5.0

_CONFIG_FIX = "Fix larder.yaml (see docs/deployment.md)."


@dataclass(frozen=True)
class Check:
    """One finding of :func:`diagnose`."""

    area: str  # config, catalog, storage, online, mlflow, consistency, push
    target: str  # what was checked (credentials removed)
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return redact_text(text.strip().splitlines()[0] if len(text) > 600 else text.strip())


# ----------------------------------------------------------------------------------------- catalog
def check_catalog(ctx: Context) -> tuple[Check, bool]:
    """The catalog's reachability and schema; (check, whether the catalog can be used as it is)."""
    from larder.catalog import migrate

    url = ctx.catalog_url
    target = redact_url(url)
    shared = not url.startswith("sqlite")
    try:
        st = migrate.status_at(url)
    except LarderError as exc:
        fix = ("Check catalog_url in larder.yaml: host, port, database, and the credentials from the environment "
               "(PGUSER/PGPASSWORD or ${NAME} references); is the server running and reachable from here?"
               if shared else "Check catalog_url in larder.yaml and that the file is readable.")
        return Check("catalog", target, "fail", f"not reachable: {_error(exc)}", fix), False
    if st.state == "current":
        return Check("catalog", target, "ok", f"reachable, schema {st.describe()}"), True
    if st.state == "empty":
        if not shared:
            return Check("catalog", target, "ok", "no catalog yet: the first client creates it"), False
        return Check("catalog", target, "warn", "reachable but empty: no catalog has been created there yet",
                     "Run `larder catalog upgrade` to create it (the first client creates it too)."), False
    if st.state == "ahead":
        return Check("catalog", target, "fail", f"written by a newer larder: {st.describe()}",
                     "Upgrade larder on this machine (pip install -U larder)."), False
    auto = ctx.config.catalog_auto_upgrade if ctx.config.catalog_auto_upgrade is not None else not shared
    fix = ("Run `larder catalog upgrade` (safe with other clients running; back the catalog up first)."
           + (" Opening it with this larder would also upgrade it." if auto else ""))
    return Check("catalog", target, "warn" if auto else "fail",
                 f"needs an upgrade: {st.describe()} ({', '.join(st.pending)})", fix), False


# ----------------------------------------------------------------------------------------- storage
def check_storage(ctx: Context) -> Check:
    """Write a one-row Delta table under the storage root the way larder writes tables (delta-rs, the
    same options and commit mechanism), read it back and delete it."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    root = ctx.storage.root
    target = root.uri
    # at depth 1 under the root: never taken for a table directory (<catalog>/<schema>/<table>)
    probe = root.child(f"_larder_doctor-{uuid.uuid4().hex}")
    data = pa.table({"probe": pa.array([1], pa.int64())})
    creds = ("Check storage and storage_options in larder.yaml (endpoint, region), that the bucket exists, "
             "and that this machine's credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or an "
             "instance role) may put, get, list and delete objects under it.")
    fix = creds if not root.is_local else f"Make {target} writable by this user (or point storage elsewhere)."
    try:
        root.ensure_dir()
        write_deltalake(probe.uri, data, mode="error", storage_options=probe.storage_options)
        back = DeltaTable(probe.uri, storage_options=probe.storage_options).to_pyarrow_table()
    except Exception as exc:  # noqa: BLE001 - object-store errors come as OSError or deltalake's own types
        try:
            probe.remove()
        except LarderError:
            pass
        return Check("storage", target, "fail", f"not writable: {_error(exc)}", fix)
    try:
        probe.remove()
    except LarderError as exc:
        return Check("storage", target, "fail", f"writable, but the probe table cannot be deleted: {_error(exc)}",
                     fix)
    if not back.equals(data):
        return Check("storage", target, "fail", "a probe table read back differs from what was written",
                     "The storage does not keep what is written: check the endpoint in storage_options.")
    detail = "writable (a probe Delta table written, read back and deleted)"
    if root.scheme in ("s3", "s3a"):
        unsafe = {k: v for k, v in {**{k: v for k, v in os.environ.items() if k == UNSAFE_RENAME},
                                     **{k.upper(): v for k, v in root.options.items()}}.items()
                  if k == UNSAFE_RENAME and str(v).strip().lower() in ("true", "1", "yes")}
        if unsafe:
            return Check("storage", target, "warn",
                         f"{detail}, but {UNSAFE_RENAME} is set: delta-rs then commits without conditional put, "
                         "and two clients writing one table at once can lose a commit",
                         f"Remove {UNSAFE_RENAME} from storage_options and the environment (the object store "
                         "must support conditional writes: AWS S3, MinIO and moto do).")
        detail += "; concurrent commits use conditional put (the object store must honour If-None-Match)"
    return Check("storage", target, "ok", detail)


# ------------------------------------------------------------------------------------------ online
def _online_specs(ctx: Context, catalog_ok: bool) -> tuple[dict[str, tuple[str, Any]], list[Check]]:
    """{store key: (how it is known, spec)} of the configured stores and of live publications' stores."""
    from sqlalchemy import select

    from larder.online.stores.specs import parse_spec, store_key

    found: dict[str, tuple[str, Any]] = {}
    problems: list[Check] = []
    for name, spec in ctx.config.online_stores.items():
        found.setdefault(store_key(spec, ctx.root), (f"larder.yaml online_stores.{name}", spec))
    if catalog_ok:
        from larder.catalog.online import PublicationRecord

        with ctx.catalog.session() as s:
            records = list(s.scalars(select(PublicationRecord).where(PublicationRecord.dropped_at.is_(None))))
        for rec in records:
            configured: Any = ctx.config.online_stores.get(rec.store_name) if rec.store_name else None
            try:
                recorded = configured or parse_spec(rec.store_spec)
            except LarderError as exc:
                problems.append(Check("online", rec.table_name, "fail",
                                      f"the publication's store record is unreadable: {_error(exc)}",
                                      f"Publish {rec.table_name} again with fe.publish_table(...)."))
                continue
            key = store_key(recorded, ctx.root)
            if key not in found:
                found[key] = (f"publications ({rec.table_name}, ...)", recorded)
    return found, problems


def _ping(spec: Any, root: Path, timeout: float) -> str:
    """What answered; raises what the store raised."""
    if spec.type == "sqlite":
        from larder.online.stores.specs import sqlite_path

        path = Path(sqlite_path(spec, root))
        if not path.exists():
            if not os.access(path.parent if path.parent.exists() else root, os.W_OK):
                raise PermissionError(f"{path} does not exist and its directory is not writable")
            return f"{path} not created yet (the first publish creates it)"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
        try:
            n = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            conn.close()
        return f"{path} opens ({n} schema objects)"
    if spec.type == "dynamodb":
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "dynamodb", region_name=spec.region, endpoint_url=spec.endpoint_url,
            config=Config(connect_timeout=timeout, read_timeout=timeout,
                          retries={"total_max_attempts": 1, "mode": "standard"}))
        try:
            client.list_tables(Limit=1)
        finally:
            client.close()
        return "answers (ListTables)"
    if spec.type == "redis":
        import redis

        from larder.online.stores.redis import with_credentials

        client = redis.Redis.from_url(with_credentials(spec.url, password_env=spec.password_env),
                                      socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
        return "answers (PING)"
    raise ValueError(f"unknown online store type {spec.type!r}")  # pragma: no cover - pydantic forbids


_ONLINE_FIX = {
    "sqlite": "Check the path (relative paths are under the larder root) and its permissions.",
    "dynamodb": ("Check endpoint_url and region in the store spec, that DynamoDB is reachable from here, and "
                 "this machine's AWS credentials (environment, profile or instance role)."),
    "redis": ("Check the store's url (host, port, database), that redis-server is running and reachable, and "
              "REDIS_USERNAME/REDIS_PASSWORD (or the spec's password_env) when the server needs a password."),
}


def check_online(ctx: Context, catalog_ok: bool, timeout: float = TIMEOUT_S) -> list[Check]:
    from larder.online.stores.specs import redacted_spec

    specs, checks = _online_specs(ctx, catalog_ok)
    for how, spec in specs.values():
        shown = {k: v for k, v in redacted_spec(spec).items() if v not in (None, "", False)}
        target = f"{spec.type} {json.dumps({k: v for k, v in shown.items() if k != 'type'}, default=str)}"
        try:
            detail = _ping(spec, ctx.root, timeout)
        except Exception as exc:  # noqa: BLE001 - any client error means not reachable
            checks.append(Check("online", target, "fail", f"not reachable ({how}): {_error(exc)}",
                                _ONLINE_FIX[spec.type]))
            continue
        checks.append(Check("online", target, "ok", f"{detail} ({how})"))
    if not specs and not checks:
        checks.append(Check("online", "-", "ok", "no online store configured or published to"))
    return checks


# ------------------------------------------------------------------------------------------ mlflow
def tracking_uri(ctx: Context) -> tuple[str, str]:
    """(the tracking URI larder would use, where it comes from), as :mod:`larder.models.tracking` rules."""
    from larder.config import expand_env
    from larder.models.tracking import default_tracking_uri, user_tracking_uri

    user = user_tracking_uri()  # the environment or mlflow.set_tracking_uri; not a URI larder set itself
    if user:
        return user, "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") == user else "set in MLflow"
    if ctx.config.mlflow_tracking_uri:
        return expand_env(ctx.config.mlflow_tracking_uri, setting="mlflow_tracking_uri"), "larder.yaml"
    return default_tracking_uri(ctx.root), "default"


def _http_get(url: str, timeout: float) -> tuple[int, bytes]:
    headers = {}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user and password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the configured server
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _check_server(uri: str, how: str, timeout: float) -> list[Check]:
    base = uri.rstrip("/")
    target = redact_url(uri)
    reach_fix = ("Check mlflow_tracking_uri in larder.yaml (or MLFLOW_TRACKING_URI) and that `mlflow server` "
                 "is running and reachable from here.")
    try:
        health, _ = _http_get(f"{base}/health", timeout)
        api, body = _http_get(f"{base}/api/2.0/mlflow/experiments/search?max_results=1", timeout)
    except (urllib.error.URLError, OSError) as exc:
        return [Check("mlflow", target, "fail", f"not reachable ({how}): {_error(exc)}", reach_fix)]
    if api in (401, 403):
        return [Check("mlflow", target, "fail", f"the server refuses this client (HTTP {api})",
                      "Set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.")]
    if health != 200 or api != 200:
        return [Check("mlflow", target, "fail",
                      f"the server answers but fails (health HTTP {health}, REST API HTTP {api}: "
                      f"{_error(Exception(body.decode(errors='replace')[:300]))})",
                      "Look at the server's log: its --backend-store-uri database may be unreachable or need "
                      "`mlflow db upgrade <uri>`.")]
    checks = [Check("mlflow", target, "ok", f"tracking server answers ({how})")]
    try:
        code, body = _http_get(f"{base}/api/2.0/mlflow-artifacts/artifacts", timeout)
    except (urllib.error.URLError, OSError) as exc:
        checks.append(Check("mlflow", f"{target} artifacts", "fail",
                            f"listing the artifact store does not answer: {_error(exc)}",
                            "Look at the server's log and its --artifacts-destination; retry with a longer "
                            "--timeout if the server is merely slow."))
        return checks
    if code == 200:
        checks.append(Check("mlflow", f"{target} artifacts", "ok", "the server reaches its artifact store"))
    elif code >= 500:
        checks.append(Check("mlflow", f"{target} artifacts", "fail",
                            f"the server cannot list its artifact store (HTTP {code}: "
                            f"{_error(Exception(body.decode(errors='replace')[:300]))})",
                            "Check the server's --artifacts-destination, its credentials for that store and, "
                            "for an S3 API server, MLFLOW_S3_ENDPOINT_URL in the server's environment."))
    # 404: artifacts not proxied (--no-serve-artifacts): clients write to the artifact root themselves
    return checks


def check_mlflow(ctx: Context, timeout: float = TIMEOUT_S) -> list[Check]:
    from larder.models.tracking import is_databricks_uri

    uri, how = tracking_uri(ctx)
    if os.environ.get("MLFLOW_TRACKING_URI") and is_databricks_uri(os.environ["MLFLOW_TRACKING_URI"]):
        how = "MLFLOW_TRACKING_URI is a Databricks URI, mapped to larder's own"
    if uri.startswith(("http://", "https://")):
        return _check_server(uri, how, timeout)
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.exists():
            return [Check("mlflow", uri, "ok", f"local tracking database, created by the first log_model ({how})")]
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
            try:
                conn.execute("SELECT count(*) FROM experiments").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return [Check("mlflow", uri, "fail", f"the tracking database does not open: {exc}",
                          "Move the file aside (larder creates a new one), or run `mlflow db upgrade` on it.")]
        return [Check("mlflow", uri, "ok", f"local tracking database opens ({how})")]
    try:
        import mlflow

        mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - whatever MLflow raises for an unusable store
        return [Check("mlflow", redact_url(uri), "fail", f"not usable ({how}): {_error(exc)}",
                      "Check mlflow_tracking_uri in larder.yaml (or MLFLOW_TRACKING_URI).")]
    return [Check("mlflow", redact_url(uri), "ok", f"tracking store answers ({how})")]


# ------------------------------------------------------------------------------------- consistency
def check_consistency(ctx: Context, *, repair: bool) -> list[Check]:
    from larder.offline import reconcile

    problems = reconcile.find_problems(ctx)
    checks: list[Check] = []
    if repair and problems:
        for p in reconcile.repair(ctx, problems):
            checks.append(Check("consistency", p.table or p.path or "-", "ok", f"repaired: {p.detail}", p.fix))
        problems = reconcile.find_problems(ctx)
    for p in problems:
        fix = f"{p.fix[:1].upper()}{p.fix[1:]}: run `larder doctor --repair`." if p.repairable else p.fix
        checks.append(Check("consistency", p.table or p.path or "-", "warn" if p.repairable else "fail",
                            f"{p.kind}: {p.detail}", fix))
    if not checks:
        checks.append(Check("consistency", "catalog and storage", "ok", "every table's data and records agree"))
    return checks


def check_pushes(ctx: Context, *, repair: bool, min_age_s: float | None = None) -> list[Check]:
    """Pushes whose online write did not finish (recorded under way for ``min_age_s``, default a
    minute); completed when ``repair``."""
    from larder.client import FeatureEngineeringClient
    from larder.online.push import PENDING_AGE_S

    age = PENDING_AGE_S if min_age_s is None else min_age_s
    checks: list[Check] = []
    with FeatureEngineeringClient(root=ctx.root) as fe:
        for p in fe._pusher.pending(min_age_s=age):
            target = f"{p.table_name} push {p.push_id}"
            if p.delta_version is None:
                what = "stopped before its Delta commit: nothing is missing online"
            else:
                what = f"committed in Delta version {p.delta_version}, but not every online store was written"
            if repair:
                try:
                    rows = fe._pusher.complete(p)
                except LarderError as exc:
                    checks.append(Check("push", target, "fail", f"{what}; completing it failed: {_error(exc)}",
                                        "Make the online store reachable, then run `larder doctor --repair` again."))
                    continue
                checks.append(Check("push", target, "ok", f"repaired: {what}; {rows} row(s) written online"))
            else:
                checks.append(Check("push", target, "warn", what,
                                    "Run `larder doctor --repair` (or push again with the same push_id)."))
    return checks


# ------------------------------------------------------------------------------------------- all
def diagnose(root: str | os.PathLike[str] | None = None, *, repair: bool = False,
             timeout: float = TIMEOUT_S) -> list[Check]:
    """Every check of the module docstring on the deployment at ``root`` (``$LARDER_ROOT`` or ./.larder);
    ``timeout``: how long, in seconds, each probe of a server (online store, MLflow) waits for an answer."""
    from larder.context import Context

    try:
        ctx = Context(root)
    except LarderError as exc:
        return [Check("config", str(root or os.environ.get("LARDER_ROOT") or ".larder"), "fail", _error(exc),
                      _CONFIG_FIX)]
    try:
        try:
            storage_target = ctx.storage.root.uri
        except LarderError as exc:
            return [Check("config", str(ctx.root), "fail", _error(exc), _CONFIG_FIX)]
        checks = [Check("config", str(ctx.root / "larder.yaml"), "ok", "parsed")]
        catalog, usable = check_catalog(ctx)
        checks.append(catalog)
        checks.append(check_storage(ctx) if storage_target else Check("storage", "-", "fail", "no storage root"))
        checks += check_online(ctx, usable, timeout)
        checks += check_mlflow(ctx, timeout)
        if usable and checks[2].status == "ok":
            checks += check_consistency(ctx, repair=repair)
            checks += check_pushes(ctx, repair=repair)
        elif usable:
            checks.append(Check("consistency", "-", "warn", "not checked: the storage is not usable",
                                "Fix the storage first."))
        elif catalog.status != "ok":
            checks.append(Check("consistency", "-", "warn", "not checked: the catalog is not usable",
                                "Fix the catalog first."))
        return checks
    finally:
        ctx.close()


__all__ = ["Check", "Status", "check_catalog", "check_consistency", "check_mlflow", "check_online", "check_pushes",
           "check_storage", "diagnose", "tracking_uri"]
