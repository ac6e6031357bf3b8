#!/usr/bin/env bash
# make demo: start a local d6 sandbox and run the four example DAGs against it.
#
# Everything lives in the project: Airflow's home (SQLite, logs, exported files) is
# .airflow/demo, recreated on every run; the sandbox listens on a free loopback port and is
# stopped, by its own pid, however the demo ends. Exits non-zero if any DAG run did not succeed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
DEMO_HOME="$ROOT/.airflow/demo"
RUNNER=(python "$ROOT/scripts/demo_runner.py")

BOLD="" RED="" OFF=""
if [[ -t 1 ]]; then BOLD=$'\033[1m' RED=$'\033[31m' OFF=$'\033[0m'; fi
step() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
info() { printf '    %s\n' "$*"; }
fail() { printf '\n%s%s%s\n' "$RED" "$*" "$OFF" >&2; exit 1; }

SANDBOX_PID=""
cleanup() {
    local status=$?
    if [[ -n "$SANDBOX_PID" ]] && kill -0 "$SANDBOX_PID" 2>/dev/null; then
        kill "$SANDBOX_PID" 2>/dev/null || true
        # It stops on SIGTERM within a moment; do not let a stuck one hang the demo.
        for _ in $(seq 1 50); do kill -0 "$SANDBOX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SANDBOX_PID" 2>/dev/null || true
        wait "$SANDBOX_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 ]]; then
        printf '\n%sThe demo failed (exit %s). Logs: %s%s\n' \
            "$RED" "$status" "$DEMO_HOME/logs" "$OFF" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v d6-sandbox >/dev/null && command -v airflow >/dev/null \
    || fail "d6-sandbox and airflow are not on PATH: run 'make demo', which installs them in .venv"

STARTED=$SECONDS
step "Preparing a project-local Airflow home"
rm -rf "$DEMO_HOME"
mkdir -p "$DEMO_HOME/logs"
export AIRFLOW_HOME="$DEMO_HOME"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$DEMO_HOME/airflow.db"
export AIRFLOW__LOGGING__BASE_LOG_FOLDER="$DEMO_HOME/logs/airflow"
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=120
# The example DAGs retry a failed task after 5 minutes; a demo run shows a failure within seconds.
export D6_RETRY_DELAY_SECONDS="${D6_RETRY_DELAY_SECONDS:-5}"
# The sandbox is on loopback: never send its traffic through a proxy.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
info "AIRFLOW_HOME=${AIRFLOW_HOME#"$ROOT"/} (SQLite), DAGs from dags/"

step "Starting the d6 sandbox (seed 1: 25 schools, every onboarding state)"
# A fresh integrator password per demo, handed over in the environment (never on a command line).
SANDBOX_PASSWORD="$(python -c 'import secrets; print(secrets.token_urlsafe(18))')"
D6_SANDBOX_PASSWORD="$SANDBOX_PASSWORD" d6-sandbox --host 127.0.0.1 --port 0 \
    >"$DEMO_HOME/logs/sandbox.out" 2>"$DEMO_HOME/logs/sandbox.log" &
SANDBOX_PID=$!
SANDBOX_URL=""
for _ in $(seq 1 100); do
    if [[ -s "$DEMO_HOME/logs/sandbox.out" ]]; then
        # The first line reads "d6 sandbox listening on http://127.0.0.1:PORT/api".
        SANDBOX_URL="$(head -n 1 "$DEMO_HOME/logs/sandbox.out" \
            | grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)"
        [[ -n "$SANDBOX_URL" ]] && break
    fi
    kill -0 "$SANDBOX_PID" 2>/dev/null \
        || fail "The sandbox exited at start; see $DEMO_HOME/logs/sandbox.log"
    sleep 0.1
done
[[ -n "$SANDBOX_URL" ]] || fail "The sandbox printed no URL in 10 s; see $DEMO_HOME/logs/sandbox.log"
# The control API lives at the server root, beside /api.
CONTROL_URL="${SANDBOX_URL%/api*}"
info "d6 API: $SANDBOX_URL  (control API: $CONTROL_URL/_sandbox/, pid $SANDBOX_PID)"

step "Creating Airflow's metadata database"
airflow db migrate >"$DEMO_HOME/logs/db-migrate.log" 2>&1 \
    || fail "airflow db migrate failed; see $DEMO_HOME/logs/db-migrate.log"
info "done"

# The connection lives in the environment, not the database; Airflow masks its password in logs.
AIRFLOW_CONN_D6_DEFAULT="$(SANDBOX_URL="$SANDBOX_URL" SANDBOX_PASSWORD="$SANDBOX_PASSWORD" \
    python - <<'EOF'
import json, os
print(json.dumps({"conn_type": "d6", "host": os.environ["SANDBOX_URL"], "login": "sandbox-user",
                  "password": os.environ["SANDBOX_PASSWORD"], "extra": {"max_attempts": 3}}))
EOF
)"
export AIRFLOW_CONN_D6_DEFAULT
info "connection d6_default -> $SANDBOX_URL (user sandbox-user, a fresh password)"
# d6_school_sync pseudonymises personal fields with the password of d6_pseudonym_key.
AIRFLOW_CONN_D6_PSEUDONYM_KEY="$(python -c 'import json, secrets
print(json.dumps({"conn_type": "generic", "password": secrets.token_hex(32)}))')"
export AIRFLOW_CONN_D6_PSEUDONYM_KEY
info "connection d6_pseudonym_key: a fresh random pseudonym key"

"${RUNNER[@]}" "$CONTROL_URL" "$DEMO_HOME"

FILES="$(find "$DEMO_HOME/data" -type f -name '*.jsonl' | wc -l | tr -d ' ')"
info "$FILES files under ${DEMO_HOME#"$ROOT"/}/data/<day>/<school_id>/, for example:"
find "$DEMO_HOME/data" -type f -name '*.jsonl' | sort | head -n 3 | sed "s|^$ROOT/|      |"
FILES="$(find "$DEMO_HOME/sync" -type f -name '*.jsonl' | wc -l | tr -d ' ')"
info "$FILES files under ${DEMO_HOME#"$ROOT"/}/sync/<school_id>/ (d6_school_sync), for example:"
find "$DEMO_HOME/sync" -type f -name '*.jsonl' | sort | head -n 3 | sed "s|^$ROOT/|      |"

step "Demo finished in $((SECONDS - STARTED)) s"
HOME_SHOWN="${DEMO_HOME#"$ROOT"/}"
info "Airflow home: $HOME_SHOWN   logs: $HOME_SHOWN/logs/   files: $HOME_SHOWN/data/, $HOME_SHOWN/sync/"
info "e.g. less $HOME_SHOWN/logs/d6_onboarding.log"
