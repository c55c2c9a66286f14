# Helpers shared by infra/up, infra/down and infra/test. Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${TIDEMARK_DATA:-$ROOT/.data}"
export PATH="$HOME/.cargo/bin:$PATH"
# Checked queries (`sqlx::query!`) are checked against .sqlx/, not a live database, so that
# a build never depends on one (a DATABASE_URL set for the services is not the schema's
# source). infra/sqlx-prepare writes .sqlx/.
export SQLX_OFFLINE=true

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

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/infra/kafka/pom.xml")"
# The broker's classpath, assembled from Maven artifacts once per machine and reused.
KAFKA_LIBS="${TIDEMARK_KAFKA_LIBS:-$HOME/.cache/tidemark/kafka-$KAFKA_VERSION/libs}"

# Apache Kafka from Maven: the pinned broker and a logging backend, copied with their
# runtime dependencies into $KAFKA_LIBS (a minute on a fresh machine, nothing afterwards).
ensure_kafka() {
  command -v java >/dev/null || fail "java is missing: Apache Kafka needs a Java 17 runtime (apt-get install openjdk-17-jre-headless)"
  if [ -f "$KAFKA_LIBS/.complete" ]; then
    return 0
  fi
  command -v mvn >/dev/null || fail "mvn is missing: it assembles the Kafka broker from Maven Central (apt-get install maven)"
  say "assembling Apache Kafka $KAFKA_VERSION from Maven into $KAFKA_LIBS (once per machine)"
  rm -rf "$KAFKA_LIBS"
  mvn -q -B -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" \
    || fail "Maven could not fetch Apache Kafka $KAFKA_VERSION; see its output above"
  [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || fail "kafka_2.13-$KAFKA_VERSION.jar is missing from $KAFKA_LIBS"
  touch "$KAFKA_LIBS/.complete"
}

# ensure_venv DIR WHAT PACKAGE…: Python tools in a virtualenv of their own, once per machine.
ensure_venv() {
  local venv="$1" what="$2"
  shift 2
  if [ -f "$venv/.complete" ]; then
    return 0
  fi
  command -v python3 >/dev/null || fail "python3 is missing: $what needs it (apt-get install python3)"
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    [ "$(id -u)" = 0 ] || fail "python3's venv module is missing and installing it needs root: sudo apt-get install python3-venv"
    say "installing python3-venv from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null \
      || fail "apt-get could not install python3-venv"
  fi
  say "installing $* ($what) into $venv (once per machine)"
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "python3 -m venv could not create $venv"
  "$venv/bin/pip" install -q "$@" || fail "pip could not install $*; see its output above"
  touch "$venv/.complete"
}

SCHEMATHESIS_VERSION="4.32.5"
# The API fuzzer the conformance test drives.
SCHEMATHESIS_VENV="${TIDEMARK_SCHEMATHESIS_VENV:-$HOME/.cache/tidemark/schemathesis-$SCHEMATHESIS_VERSION}"
ensure_schemathesis() {
  ensure_venv "$SCHEMATHESIS_VENV" "the API fuzzer" "schemathesis==$SCHEMATHESIS_VERSION"
}

# The validators of the production shape (infra/k8s, infra/compose.yaml): Kubernetes'
# schemas and the Compose specification's, both bundled, so no cluster is needed.
VALIDATORS_VENV="${TIDEMARK_VALIDATORS_VENV:-$HOME/.cache/tidemark/validators-1}"
ensure_validators() {
  ensure_venv "$VALIDATORS_VENV" "the manifest validators" "kubernetes-validate==1.37.0" "check-jsonschema==0.39.0"
}

# The console's page, built from console/web with the machine's Node.js and npm: its
# packages from the lockfile (again when the lockfile changes), and the build again when a
# source is newer than it. No built page is committed.
WEB="$ROOT/console/web"
ensure_console() {
  command -v npm >/dev/null || fail "npm is missing: the console is built with Node.js 20 and npm (apt-get install nodejs npm)"
  if [ ! -f "$WEB/node_modules/.package-lock.json" ] || [ "$WEB/package-lock.json" -nt "$WEB/node_modules/.package-lock.json" ]; then
    say "installing the console's packages (npm ci in console/web)"
    (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed in console/web; see its output above"
  fi
  if [ ! -f "$WEB/dist/index.html" ] \
    || [ -n "$(find "$WEB/src" "$WEB/index.html" "$WEB/vite.config.ts" "$WEB/package-lock.json" -newer "$WEB/dist/index.html" -print -quit)" ]; then
    say "building the console's page (tsc and vite build in console/web)"
    (cd "$WEB" && npm run --silent build) || fail "the console's page does not build; see above"
  fi
}

# Debian's Chromium, which the browser tests drive headless through playwright-core.
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  [ "$(id -u)" = 0 ] || fail "Chromium is missing and installing it needs root: sudo apt-get install chromium"
  say "installing Chromium from Debian's packages (for the browser tests)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || fail "apt-get could not install chromium"
}

# Debian's poppler-utils: the quote document tests read PDFs' text with its pdftotext.
ensure_pdftotext() {
  command -v pdftotext >/dev/null && return 0
  [ "$(id -u)" = 0 ] || fail "pdftotext is missing and installing it needs root: sudo apt-get install poppler-utils"
  say "installing poppler-utils from Debian's packages (pdftotext, for the quote document tests)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null \
    || fail "apt-get could not install poppler-utils"
}

# Runs in a subshell (a command substitution or a background job), which exec replaces, so
# that the pid infra/down stops is the broker itself.
kafka_java() {
  # shellcheck disable=SC2086 # the heap options are words
  exec java ${KAFKA_HEAP:--Xms512m -Xmx1g} -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/infra/kafka/log4j2.yaml" -cp "$KAFKA_LIBS/*" "$@"
}

# PostgreSQL from Debian's packages, when nothing answers on 127.0.0.1:5432: installed if
# missing, started, and told to trust the local `postgres` user over TCP (a development
# database; production names its own DATABASE_URL with credentials).
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    return 0
  fi
  if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    [ "$(id -u)" = 0 ] || fail "PostgreSQL is not installed and installing it needs root: sudo apt-get install postgresql"
    say "installing PostgreSQL from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
      || fail "apt-get could not install postgresql"
  fi
  local version hba
  version="$(ls /etc/postgresql | sort -n | tail -n 1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "added by tidemark" "$hba" 2>/dev/null; then
    say "letting the local postgres user connect over TCP without a password ($hba)"
    { echo "host all postgres 127.0.0.1/32 trust # added by tidemark infra/lib.sh"
      echo "host all postgres ::1/128 trust # added by tidemark infra/lib.sh"
      cat "$hba"; } >"$hba.new" && mv "$hba.new" "$hba" && chown postgres:postgres "$hba" && chmod 640 "$hba" \
      || fail "cannot edit $hba"
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 100); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 0.2; done
  fail "PostgreSQL does not answer on 127.0.0.1:5432; see /var/log/postgresql/"
}

# start_broker DIR PORT: a single-node Kafka (broker and controller in one process) with
# its data in DIR, listening on PORT and its controller on PORT+1. Formats DIR the first time.
start_broker() {
  local dir="$1" port="$2" controller=$(($2 + 1))
  mkdir -p "$dir"
  if pid="$(running_pid "$dir/broker.pid")"; then
    say "broker already running (pid $pid) on 127.0.0.1:$port"
    return 0
  fi
  port_open "$port" && fail "port $port is taken by another process; set TIDEMARK_BROKER_PORT to a free one"
  port_open "$controller" && fail "port $controller (the broker's controller) is taken by another process"
  sed -e "s:@DATA@:$dir:g" -e "s:@PORT@:$port:g" -e "s:@CONTROLLER_PORT@:$controller:g" \
    "$ROOT/infra/kafka/server.properties.template" >"$dir/server.properties"
  if [ ! -f "$dir/kraft/meta.properties" ]; then
    say "formatting the broker's storage in $dir/kraft"
    (kafka_java kafka.tools.StorageTool format --standalone -t "$(kafka_java kafka.tools.StorageTool random-uuid)" \
      -c "$dir/server.properties") >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; fail "formatting the broker's storage failed"; }
  fi
  say "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$port (data: $dir/kraft, log: $dir/broker.log)"
  [ -f "$dir/broker.log" ] && mv "$dir/broker.log" "$dir/broker.log.1"
  kafka_java kafka.Kafka "$dir/server.properties" >"$dir/broker.log" 2>&1 &
  echo $! >"$dir/broker.pid"
  for _ in $(seq 1 300); do
    grep -q "Kafka Server started" "$dir/broker.log" 2>/dev/null && port_open "$port" && return 0
    kill -0 "$(cat "$dir/broker.pid")" 2>/dev/null || break
    sleep 0.2
  done
  tail -n 30 "$dir/broker.log" >&2
  fail "the broker did not start (log: $dir/broker.log)"
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
