#!/usr/bin/env bash
# Install (when missing) and start a Docker engine, then build the sandbox test image.
#
# Called by .ci/run on a fresh Debian 12 machine (root). Idempotent: a second run finds
# the engine up and the image built and only rebuilds the (cheap) test image.
# In CI the Docker sandbox must really run, so every failure here exits non-zero.
#
# Environment:
#   KS_DOCKERD_LOG   where dockerd logs when this script starts it (/var/log/ks-dockerd.log)
#   KS_DOCKER_WAIT   seconds to wait for the engine to answer (60)
set -euo pipefail

cd "$(dirname "$0")/.."
LOG=${KS_DOCKERD_LOG:-/var/log/ks-dockerd.log}
WAIT=${KS_DOCKER_WAIT:-60}
# Which engine this script started: "pid N" (dockerd started here) or "systemd".
STARTED=${KS_DOCKERD_STARTED:-/run/ks-dockerd.started}

say() { echo "[.ci/docker.sh] $*"; }
die() {
    echo "[.ci/docker.sh] ERROR: $*" >&2
    if [ -f "$LOG" ]; then
        echo "[.ci/docker.sh] last lines of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
    fi
    exit 1
}

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

# bash .ci/docker.sh --stop: stop the engine this script started (none other).
if [ "${1:-}" = "--stop" ]; then
    [ -f "$STARTED" ] || { say "no engine started by this script"; exit 0; }
    read -r how pid < "$STARTED" || true
    if [ "$how" = systemd ]; then
        systemctl stop docker docker.socket containerd 2>/dev/null || true
    elif [ "$how" = pid ] && kill -0 "$pid" 2>/dev/null; then
        say "stopping dockerd (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && { say "dockerd did not stop within 30 s: SIGKILL"; kill -KILL "$pid" || true; }
    fi
    rm -f "$STARTED"
    exit 0
fi

# 1. Packages: the engine (docker.io brings dockerd, containerd, runc and docker-init,
#    used for --init) and a static busybox for the test image's root fs.
pkgs=()
command -v dockerd >/dev/null 2>&1 || pkgs+=(docker.io)
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed"; then
    pkgs+=(busybox-static)
fi
if [ ${#pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "need root to install ${pkgs[*]}"
    say "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    # Recommends (git, apparmor, needrestart, ...) are not needed to run containers.
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
        || die "apt-get install ${pkgs[*]} failed"
fi
command -v docker >/dev/null 2>&1 || die "no docker client on PATH after installing docker.io"

# 2. The engine: systemd may already have started it (a full Debian install does);
#    inside a container or a VM without systemd we start dockerd ourselves.
start_dockerd() {
    say "starting dockerd $* (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    # setsid + nohup: the daemon outlives this script and the CI step that ran it.
    setsid nohup dockerd "$@" >>"$LOG" 2>&1 </dev/null &
    local pid=$! i
    echo "pid $pid" > "$STARTED"
    for ((i = 0; i < WAIT; i++)); do
        engine_up && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            say "dockerd exited during start-up"
            return 1
        fi
        sleep 1
    done
    say "dockerd did not answer within ${WAIT} s; stopping it"
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 15; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$STARTED"
    return 1
}

if engine_up; then
    say "engine already running"
else
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        say "starting docker through systemd"
        systemctl start docker && echo "systemd" > "$STARTED" || true
        for ((i = 0; i < WAIT; i++)); do engine_up && break; sleep 1; done
    fi
    if ! engine_up; then
        [ "$(id -u)" = 0 ] || die "the Docker engine is not running and only root can start it"
        if grep -qx dockerd /proc/[0-9]*/comm 2>/dev/null; then
            # A dockerd that no longer answers (e.g. left over from a crashed run).
            die "a dockerd process exists but does not answer 'docker info'"
        fi
        rm -f /var/run/docker.pid
        # Sandboxes use network_mode=none; where the kernel lacks iptables/NAT support
        # (some VMs) the default bridge cannot be set up, so retry without it.
        start_dockerd || start_dockerd --iptables=false --bridge=none \
            || die "could not start dockerd"
    fi
fi
say "engine: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)"

# 3. The test image (no registry needed).
sandbox/build-test-image.sh || die "building the sandbox test image failed"
say "ok"
