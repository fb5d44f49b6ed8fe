#!/bin/sh
# Create the lakehouse buckets on a MinIO server with the MinIO client (mc).
#   sh infra/minio/bootstrap.sh [ENDPOINT]        (default http://127.0.0.1:9000)
# Credentials: MINIO_ROOT_USER / MINIO_ROOT_PASSWORD (default minioadmin/minioadmin).
# Buckets: LAKEHOUSE_BUCKETS (default "lakehouse lakehouse-warm lakehouse-cold"). The warm and cold buckets
# are for stores without storage classes, where a tier is a different bucket (see the README).
# Without mc, `lakehouse init --create-bucket` creates the warehouse bucket through the S3 API.
set -eu
endpoint="${1:-http://127.0.0.1:9000}"
user="${MINIO_ROOT_USER:-minioadmin}"
password="${MINIO_ROOT_PASSWORD:-minioadmin}"
buckets="${LAKEHOUSE_BUCKETS:-lakehouse lakehouse-warm lakehouse-cold}"

i=0
until mc alias set lakehouse "$endpoint" "$user" "$password" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 30 ]; then echo "MinIO at $endpoint is not answering" >&2; exit 1; fi
  sleep 1
done
for b in $buckets; do
  mc mb --ignore-existing "lakehouse/$b"
done
# Versioning stays off: Delta and Iceberg keep their own history, and object versions would keep
# deleted files (and their bytes) alive after vacuum.
mc ls lakehouse
