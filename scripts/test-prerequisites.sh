#!/usr/bin/env bash
# `npm test` runs this first (the `pretest` script): it installs or starts what the test suite needs
# and a fresh machine of this kind (Debian, Node, Java, Maven, PostgreSQL installed) may lack:
#   - PostgreSQL on 127.0.0.1:5432 started with pg_ctlcluster when it is stopped (unless TEST_DATABASE_URL);
#   - Apache Kafka's jars fetched with Maven into ~/.cache/registration-platform (once);
#   - Debian's prometheus (promtool, the live-scrape test) and prometheus-alertmanager (amtool, the
#     alert-delivery test), installed with apt-get as root; the system services the packages start
#     are stopped again (the tests run their own).
# Each step says what it does; a step that has nothing to do costs a few milliseconds.
# TEST_SKIP_PREREQUISITES=1 skips it all. `.ci/run` gets the same through `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[test-prerequisites] %s\n' "$*" >&2; }

if [ "${TEST_SKIP_PREREQUISITES:-}" = "1" ]; then
  say "skipped (TEST_SKIP_PREREQUISITES=1)"
  exit 0
fi

# Runs a command as root: directly when we are root, else through a password-less sudo.
as_root() {
  if [ "$(id -u)" = "0" ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}

# --- PostgreSQL --------------------------------------------------------------------------------
if [ -n "${TEST_DATABASE_URL:-}" ]; then
  say "PostgreSQL: TEST_DATABASE_URL is set, using it"
elif pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  say "PostgreSQL: answering on 127.0.0.1:5432"
else
  version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -n 1 || true)
  if [ -z "$version" ]; then
    say "PostgreSQL: nothing answers on 127.0.0.1:5432 and no cluster in /etc/postgresql; install PostgreSQL or set TEST_DATABASE_URL"
    exit 1
  fi
  say "PostgreSQL: starting cluster $version/main with pg_ctlcluster..."
  if ! as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start; then
    say "PostgreSQL: could not start it (needs root): sudo pg_ctlcluster $version main start"
    exit 1
  fi
  mkdir -p .run
  # .ci/run stops what was started for it; a developer's PostgreSQL keeps running.
  echo "$version" > .run/test-prerequisites-started-postgres
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  pg_isready -h 127.0.0.1 -p 5432 >&2
fi

# --- Kafka jars --------------------------------------------------------------------------------
say "Kafka: jars (Maven Central, cached in ~/.cache/registration-platform)..."
npx --no-install tsx infra/kafka/cli.ts fetch

# --- Prometheus and Alertmanager (Debian packages) ---------------------------------------------
missing=()
for tool in prometheus promtool; do command -v "$tool" >/dev/null 2>&1 || missing+=(prometheus); done
for tool in prometheus-alertmanager amtool; do
  command -v "$tool" >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
done
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ' | sed 's/ *$//')
if [ -z "$packages" ]; then
  say "Prometheus: prometheus, promtool, prometheus-alertmanager and amtool installed"
else
  say "Prometheus: installing Debian's $packages (apt-get)..."
  install_packages() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y -qq --no-install-recommends $packages >/dev/null
  }
  if ! as_root bash -c "$(declare -f install_packages); packages='$packages'; install_packages"; then
    say "Prometheus: could not install (needs root): sudo apt-get install --no-install-recommends $packages"
    exit 1
  fi
  # The packages start system services (Prometheus on :9090, Alertmanager on :9093); the tests start
  # their own. Only the processes of the packages' system user are stopped.
  for service in prometheus prometheus-alertmanager; do
    (as_root service "$service" stop || as_root pkill -x -u prometheus "$service" || true) >/dev/null 2>&1
  done
  say "Prometheus: $(promtool --version 2>&1 | sed -n 1p)"
fi
say "ready"
