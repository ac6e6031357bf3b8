#!/usr/bin/env bash
# Start PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) for `make e2e`, only if they do not
# already answer. Used by CI; on a developer machine they are usually running already.
set -euo pipefail

answers() {
    # A TCP connect is enough to tell "running" from "not running"; the runner checks the rest.
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_for() {
    local name=$1 port=$2
    for _ in $(seq 1 30); do
        if answers "$port"; then
            echo "$name answers on 127.0.0.1:$port"
            return 0
        fi
        sleep 1
    done
    echo "$name did not start on 127.0.0.1:$port" >&2
    return 1
}

if ! answers 5432; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
wait_for PostgreSQL 5432

if ! answers 6379; then
    echo "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for Redis 6379
