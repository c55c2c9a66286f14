# Helpers shared by infra/up, infra/down and infra/test. Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${TIDEMARK_DATA:-$ROOT/.data}"
TANSU_VERSION="0.6.0"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
fail() { printf '\033[31merror: %s\033[0m\n' "$*" >&2; exit 1; }

# A pid file's process, if it is still alive.
running_pid() {
  local file="$1"
  [ -f "$file" ] || return 1
  local pid
  pid="$(cat "$file")"
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port="$1" what="$2" log="$3"
  for _ in $(seq 1 100); do
    port_open "$port" && return 0
    sleep 0.2
  done
  [ -n "$log" ] && tail -n 30 "$log" >&2
  fail "$what did not start listening on port $port (log: $log)"
}

ensure_cargo() {
  command -v cargo >/dev/null || fail "cargo is missing: install the Rust toolchain (rustup) first"
}

# Tansu, the Kafka-compatible broker of the local stack, built from its published crate
# once per machine (it takes about ten minutes on two cores) and reused afterwards.
ensure_tansu() {
  if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q "tansu $TANSU_VERSION"; then
    return 0
  fi
  ensure_cargo
  say "installing the Tansu $TANSU_VERSION broker (once per machine; about ten minutes)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features libsql \
    || fail "installing Tansu failed; see the cargo output above"
  tansu --version | grep -q "tansu $TANSU_VERSION" || fail "tansu on PATH is not $TANSU_VERSION: $(command -v tansu)"
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || port_open 5432; then
    return 0
  fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "starting the local PostgreSQL server"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
    for _ in $(seq 1 50); do port_open 5432 && return 0; sleep 0.2; done
  fi
  fail "PostgreSQL does not answer on 127.0.0.1:5432; start it, or point DATABASE_URL at one"
}

# start_broker DIR PORT: a Tansu broker with the SQLite engine, its data in DIR.
start_broker() {
  local dir="$1" port="$2"
  mkdir -p "$dir"
  if pid="$(running_pid "$dir/broker.pid")"; then
    say "broker already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  port_open "$port" && fail "port $port is taken by another process; set TIDEMARK_BROKER_PORT to a free one"
  say "starting the Tansu broker on 127.0.0.1:$port (data: $dir/broker.db)"
  # Tansu resolves the SQLite path against its working directory.
  (cd "$dir" && exec tansu broker \
      --storage-engine "sqlite://broker.db" \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      >"$dir/broker.log" 2>&1) &
  echo $! >"$dir/broker.pid"
  wait_for_port "$port" "the broker" "$dir/broker.log"
}

# stop_pid FILE WHAT: TERM, then KILL after ten seconds.
stop_pid() {
  local file="$1" what="$2" pid
  if pid="$(running_pid "$file")"; then
    say "stopping $what (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}
