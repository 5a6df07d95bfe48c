# Sourced by `make pytest`: starts a throw-away PostgreSQL on loopback (unless
# DATABASE_URL_PG is given) and exports DATABASE_URL_PG for the tests.
# Under CI=true a server that cannot start fails the build; elsewhere the PostgreSQL tests skip.
if [[ -z "${DATABASE_URL_PG:-}" ]]; then
  if _pg_url="$(bash scripts/pg-local.sh start)" && [[ -n "$_pg_url" ]]; then
    export DATABASE_URL_PG="$_pg_url"
  elif [[ "${CI:-}" == "true" ]]; then
    echo "pg-env: could not start PostgreSQL (see above); CI=true, so this fails the build" >&2
    unset _pg_url
    return 1 2>/dev/null || exit 1
  else
    echo "pg-env: could not start PostgreSQL; the PostgreSQL tests will be skipped" >&2
  fi
  unset _pg_url
fi
