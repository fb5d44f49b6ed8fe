#!/usr/bin/env bash
# System packages the test suite uses beyond PyPI: a PostgreSQL server (catalog-on-PostgreSQL tests), and for
# the Spark engine a Java runtime plus the SQLite JDBC driver (Spark's Iceberg catalog shares the SQLite
# catalog database with pyiceberg), and a headless Chromium with its driver for the console's browser tests.
# Idempotent and quick when everything is present. Needs root and apt-get to install; otherwise it only
# reports what is missing (those tests then skip, naming this script).
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
[ -f /usr/share/java/sqlite-jdbc.jar ] || missing+=(libxerial-sqlite-jdbc-java)
ls /usr/lib/*/jni/libsqlitejdbc.so >/dev/null 2>&1 || missing+=(libxerial-sqlite-jdbc-jni)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: missing system packages (${missing[*]}); install them with your package manager" >&2
fi
