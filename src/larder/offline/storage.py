"""Where Delta tables live: a local directory or an object store (S3, GCS, Azure), and how to reach it.

The storage root comes from ``storage`` in ``larder.yaml`` (default ``<root>/tables``); it may be a
local path, a ``file://`` URI or an object-store URI (``s3://bucket/prefix``, ``gs://...``,
``az://container/prefix``, ``abfss://...``). ``storage_options`` are handed to delta-rs unchanged
(endpoint, region, credentials...; see delta-rs' object-store options). They are never written to the
catalog: a table records only its path relative to the storage root, so every client resolves it with
its own options (credentials from the default chain or from environment variables named in
``larder.yaml`` as ``${NAME}``).

A :class:`Location` is one table's (or the root's) URI plus those options: it is the one place every
reader and writer gets them from: ``delta.py`` (deltalake), the Arrow datasets DuckDB scans, and any
other engine (``Location.storage_options`` for delta-rs, :meth:`Location.filesystem` for pyarrow).

Remote files are read and deleted through delta-rs' own object store (``deltalake.fs``), so there is
one set of options and one credential chain for data, log and listing.

Concurrent writers on S3 rely on delta-rs' conditional put (``If-None-Match: *`` on the commit file):
two writers can never both create version N, the loser gets ``CommitFailedError`` and larder retries
it. deltalake 1.x removed the DynamoDB lock table, so S3-compatible servers must support conditional
writes (AWS S3 does since 2024, as do MinIO and moto). ``AWS_S3_ALLOW_UNSAFE_RENAME`` turns that off:
``larder doctor`` flags it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pyarrow.fs as pafs

from larder.errors import ConfigError, TableError

#: URI schemes delta-rs reads and writes (besides local paths and ``file://``).
REMOTE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "azure", "memory"})

#: Option names (upper-cased) whose values are secrets: never shown in a repr or an error.
_SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "KEY", "SAS", "CREDENTIAL")


def _is_secret(name: str) -> bool:
    upper = name.upper()
    if upper in {"AWS_ACCESS_KEY_ID", "ACCESS_KEY_ID"}:
        return False
    return any(m in upper for m in _SECRET_MARKERS)


def redact_options(options: Mapping[str, str]) -> dict[str, str]:
    """``options`` with secret values replaced by ``***`` (for messages and reprs)."""
    return {k: ("***" if _is_secret(k) else v) for k, v in options.items()}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HINT = "Check storage and storage_options in larder.yaml, or run `larder doctor`."


def error_text(exc: BaseException) -> str:
    """An object-store error's message without terminal colours, its cause chain on one line."""
    lines = [ln.strip().lstrip("↳").strip() for ln in _ANSI.sub("", str(exc)).splitlines()]
    return " <- ".join(ln for ln in lines if ln)


def _local_path(uri: str) -> str | None:
    """The local path of ``uri`` (a plain path or ``file://``), or None for a remote URI."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"storage {uri!r}: file:// URIs must name a local path (file:///data/tables).")
        return url2pathname(unquote(parts.path))
    if parts.scheme and len(parts.scheme) > 1:  # "c:" on Windows is a drive, not a scheme
        return None
    return uri


@dataclass(frozen=True, repr=False)
class Location:
    """A local directory or an object-store prefix, with the options delta-rs needs to reach it."""

    uri: str
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, uri: str, options: Mapping[str, str] | None = None) -> Location:
        """A location from a path or URI; local paths are made absolute, ``file://`` becomes a path."""
        if not uri:
            raise ConfigError("storage must be a non-empty path or URI.")
        local = _local_path(uri)
        if local is not None:
            return cls(str(Path(local).expanduser().resolve()), dict(options or {}))
        scheme = urlsplit(uri).scheme.lower()
        if scheme not in REMOTE_SCHEMES:
            raise ConfigError(
                f"storage {uri!r}: unsupported scheme {scheme!r}; use a local path, file://, or one of "
                f"{sorted(REMOTE_SCHEMES)}."
            )
        return cls(uri.rstrip("/"), dict(options or {}))

    @property
    def is_local(self) -> bool:
        return _local_path(self.uri) is not None

    @property
    def scheme(self) -> str:
        return "file" if self.is_local else urlsplit(self.uri).scheme.lower()

    @property
    def storage_options(self) -> dict[str, str] | None:
        """What to pass as ``storage_options`` to deltalake (None on local disk)."""
        return None if self.is_local else dict(self.options)

    def child(self, *parts: str) -> Location:
        if self.is_local:
            return Location(str(Path(self.uri).joinpath(*parts)), self.options)
        return Location(posixpath.join(self.uri, *parts), self.options)

    def relative_to(self, root: Location) -> str | None:
        """This location's path under ``root`` (posix), or None when it is not under it."""
        if self.is_local != root.is_local:
            return None
        if self.is_local:
            try:
                return Path(self.uri).relative_to(root.uri).as_posix()
            except ValueError:
                return None
        prefix = root.uri.rstrip("/") + "/"
        return self.uri[len(prefix):] if self.uri.startswith(prefix) else None

    def filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem whose paths are relative to this location.

        Local: a ``SubTreeFileSystem`` over the local disk. Remote: delta-rs' object store (same
        options and credential chain as the Delta reads and writes). Made once per ``Location`` object
        (an object-store client takes milliseconds to build: ``create_table`` lists its new location and
        reads back its first commit through one); never pickled with it."""
        fs = self.__dict__.get("_filesystem")
        if fs is None:
            if self.is_local:
                fs = pafs.SubTreeFileSystem(self.uri, pafs.LocalFileSystem())
            else:
                from deltalake.fs import DeltaStorageHandler

                fs = pafs.PyFileSystem(DeltaStorageHandler(self.uri, dict(self.options)))
            object.__setattr__(self, "_filesystem", fs)  # a cache, not a field: equality ignores it
        return fs

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_filesystem"}

    def has_files(self) -> bool:
        """Whether anything is stored at or under this location."""
        try:
            if self.is_local:
                path = Path(self.uri)
                return path.exists() and (path.is_file() or any(path.iterdir()))
            fs = self.filesystem()
            infos = fs.get_file_info(pafs.FileSelector("", recursive=False, allow_not_found=True))
            return bool(infos)
        except Exception as exc:  # object-store errors come as OSError or deltalake's own types
            raise TableError(f"Cannot list the storage at {self!r}: {error_text(exc)}. {_HINT}") from exc

    def ensure_dir(self) -> None:
        """Create the directory on local disk (object stores have no directories)."""
        if self.is_local:
            Path(self.uri).mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        """Delete everything at or under this location (missing is fine)."""
        if self.is_local:
            import shutil

            shutil.rmtree(self.uri, ignore_errors=True)
            return
        try:
            fs = self.filesystem()
            infos = fs.get_file_info(pafs.FileSelector("", recursive=True, allow_not_found=True))
            files = [i.path for i in infos if i.type == pafs.FileType.File]
            for path in files:
                fs.delete_file(path)
        except Exception as exc:
            raise TableError(f"Cannot delete the storage at {self!r}: {error_text(exc)}. {_HINT}") from exc

    def __repr__(self) -> str:
        if not self.options:
            return repr(self.uri)
        return f"{self.uri!r} (options {redact_options(self.options)})"

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True, repr=False)
class Storage:
    """The storage root of a larder deployment: where new tables go and how recorded paths resolve."""

    root: Location

    @classmethod
    def from_config(cls, storage: str | None, options: Mapping[str, str], default: Path) -> Storage:
        return cls(Location.parse(storage if storage else str(default), options))

    def table_location(self, catalog: str, schema: str, name: str) -> Location:
        """Where a new table ``catalog.schema.name`` is created."""
        return self.root.child(catalog, schema, name)

    def recorded_path(self, location: Location) -> str:
        """What the catalog stores for a table at ``location``: its path relative to the storage root
        when it lies under it (so a moved root or another client with other credentials finds it),
        else its full path or URI."""
        rel = location.relative_to(self.root)
        return rel if rel else location.uri

    def resolve(self, recorded: str) -> Location:
        """The location of a table from its recorded path (relative: under this root)."""
        if _local_path(recorded) is None or Path(recorded).is_absolute():
            return Location.parse(recorded, self.root.options)
        return self.root.child(*recorded.split("/"))

    def __repr__(self) -> str:
        return f"Storage({self.root!r})"


__all__ = ["REMOTE_SCHEMES", "Location", "Storage", "error_text", "redact_options"]
