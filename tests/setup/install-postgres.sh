#!/usr/bin/env bash
# Debian's postgresql for the bot's PostgreSQL tests (tests/bot/test_postgres.py). The tests start a
# throwaway server themselves (tests/pg.py: initdb + pg_ctl in a temporary folder) and stop it.
# Never fails; instant when PostgreSQL is already installed.
set -u
. "$(dirname "$0")/apt.sh"

have_postgres() {
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/postgres" ] && return 0
    done
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1
}

have_postgres || apt_install_for "PostgreSQL (initdb, pg_ctl)" "the PostgreSQL tests" postgresql
exit 0
