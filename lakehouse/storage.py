"""Object-store access that is not a table format's business: listing, existence, deleting a tree.

Locations are absolute local paths or ``s3://bucket/key`` URIs; S3 goes through the one credentials model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyarrow import fs

from lakehouse.errors import StorageError

if TYPE_CHECKING:
    from lakehouse.tables.base import StorageContext


@dataclass(frozen=True)
class ObjectInfo:
    path: str
    size: int
    mtime_s: float | None


def split_location(location: str, ctx: StorageContext) -> tuple[fs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it for ``location``."""
    if location.startswith(("s3://", "s3a://")):
        if ctx.credentials is None:
            raise StorageError(f"{location} is on S3 but no S3 settings are configured")
        return ctx.credentials.pyarrow_filesystem(), location.split("://", 1)[1].rstrip("/")
    path = location[len("file://") :] if location.startswith("file://") else location
    return fs.LocalFileSystem(), path.rstrip("/") or "/"


def _uri(location: str, path: str) -> str:
    if location.startswith(("s3://", "s3a://")):
        return "s3://" + path
    return path


def list_files(location: str, ctx: StorageContext, *, recursive: bool = True) -> list[ObjectInfo]:
    """Every file below ``location`` (empty when it does not exist)."""
    filesystem, root = split_location(location, ctx)
    try:
        infos = filesystem.get_file_info(fs.FileSelector(root, recursive=recursive, allow_not_found=True))
    except OSError as e:
        raise StorageError(f"cannot list {location}: {e}") from e
    return [
        ObjectInfo(_uri(location, i.path), i.size or 0, i.mtime.timestamp() if i.mtime else None)
        for i in infos
        if i.type == fs.FileType.File
    ]


def exists(location: str, ctx: StorageContext) -> bool:
    filesystem, path = split_location(location, ctx)
    try:
        return bool(filesystem.get_file_info(path).type != fs.FileType.NotFound)
    except OSError as e:
        raise StorageError(f"cannot reach {location}: {e}") from e


def delete_tree(location: str, ctx: StorageContext) -> None:
    filesystem, path = split_location(location, ctx)
    try:
        if filesystem.get_file_info(path).type == fs.FileType.Directory:
            filesystem.delete_dir(path)
        else:
            for info in list_files(location, ctx):
                filesystem.delete_file(split_location(info.path, ctx)[1])
    except OSError as e:
        raise StorageError(f"cannot delete {location}: {e}") from e


def ensure_warehouse(ctx: StorageContext) -> None:
    """Create a local warehouse directory, or check that an S3 warehouse's bucket is reachable."""
    if ctx.warehouse.startswith(("s3://", "s3a://")):
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        bucket = ctx.warehouse.split("://", 1)[1].split("/", 1)[0]
        assert ctx.credentials is not None
        client = boto3.client("s3", **ctx.credentials.boto3_client_kwargs())
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise StorageError(
                    f"bucket {bucket!r} does not exist",
                    hint="create it (infra/minio/bootstrap.sh does for MinIO) or run `lakehouse init --create-bucket`",
                ) from e
            raise StorageError(f"cannot reach bucket {bucket!r}: {e}") from e
        except BotoCoreError as e:
            raise StorageError(f"cannot reach the S3 endpoint: {e}") from e
        return
    filesystem, path = split_location(ctx.warehouse, ctx)
    try:
        filesystem.create_dir(path, recursive=True)
    except OSError as e:
        raise StorageError(f"cannot create the warehouse directory {path}: {e}") from e


def create_bucket(ctx: StorageContext) -> bool:
    """Create the S3 warehouse's bucket if missing; True when it was created."""
    import boto3
    from botocore.exceptions import ClientError

    assert ctx.credentials is not None
    bucket = ctx.warehouse.split("://", 1)[1].split("/", 1)[0]
    client = boto3.client("s3", **ctx.credentials.boto3_client_kwargs())
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError:
        pass
    try:
        if ctx.credentials.region == "us-east-1":
            client.create_bucket(Bucket=bucket)
        else:
            client.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": ctx.credentials.region},  # type: ignore[typeddict-item]
            )
    except ClientError as e:
        raise StorageError(f"cannot create bucket {bucket!r}: {e}") from e
    return True
