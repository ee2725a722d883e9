#!/usr/bin/env bash
# Build the Docker sandbox image the tests use, without any registry or network.
#
# The real image (sandbox/Dockerfile, FROM nvidia/cuda, pip-installs torch) cannot be
# built where no registry is reachable. Instead this script
#   1. makes a tiny root file system from a static busybox (Debian: busybox-static):
#      /bin with the applets, /etc/passwd with nobody (65534), /tmp, /root (0755, so
#      uid 65534 can traverse to a host Python bind-mounted under /root/.pyenv), and
#      merged-/usr symlinks (lib -> usr/lib, lib64 -> usr/lib64) like Debian 12 has;
#   2. imports it as the base image $BASE_TAG (`docker import`, no registry);
#   3. builds sandbox/Dockerfile on top of it with INSTALL=0 (no apt, no pip), which
#      checks the Dockerfile itself and yields $IMAGE_TAG.
# The image has no Python of its own: DockerSandbox bind-mounts the host's toolchain
# read-only (host_mounts / KERNELSMITH_DOCKER_HOST_MOUNTS=auto).
#
# Usage: sandbox/build-test-image.sh [IMAGE_TAG]   (default kernelsmith-sandbox:test)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
IMAGE_TAG=${1:-${KS_TEST_IMAGE:-kernelsmith-sandbox:test}}
BASE_TAG=${KS_TEST_BASE_IMAGE:-kernelsmith-sandbox-base:test}

say() { echo "[build-test-image] $*"; }
die() { echo "[build-test-image] ERROR: $*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "no docker client on PATH"
docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run .ci/docker.sh)"

BUSYBOX=""
for cand in /bin/busybox /usr/bin/busybox /usr/local/bin/busybox; do
    if [ -x "$cand" ] && ! ldd "$cand" >/dev/null 2>&1; then  # ldd fails: static
        BUSYBOX=$cand
        break
    fi
done
[ -n "$BUSYBOX" ] || die "no static busybox found (apt-get install busybox-static)"

# Skip the work when the image is up to date with this script, the Dockerfile and busybox.
HASH=$(cat "$0" "$HERE/Dockerfile" "$BUSYBOX" | sha256sum | cut -c1-32)
if [ "${KS_REBUILD:-0}" != 1 ] && [ "$(docker image inspect --format \
        '{{index .Config.Labels "kernelsmith.test-image"}}' "$IMAGE_TAG" 2>/dev/null)" = "$HASH" ]; then
    say "$IMAGE_TAG is up to date"
    exit 0
fi

OLD_IDS=$(docker image inspect --format '{{.Id}}' "$IMAGE_TAG" "$BASE_TAG" 2>/dev/null || true)
ROOTFS=$(mktemp -d /tmp/ks-rootfs-XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
say "root fs in $ROOTFS from $BUSYBOX"
(
    cd "$ROOTFS"
    mkdir -p bin etc dev proc sys usr/lib usr/lib64 opt run var/tmp home work
    install -m 0755 "$BUSYBOX" bin/busybox
    for applet in $(bin/busybox --list); do
        [ -e "bin/$applet" ] || ln -s busybox "bin/$applet"
    done
    ln -s bin sbin
    ln -s usr/lib lib
    ln -s usr/lib64 lib64
    mkdir -m 1777 tmp
    chmod 1777 var/tmp
    mkdir -m 0755 root
    cat > etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
    cat > etc/group <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
    touch etc/hosts etc/resolv.conf etc/hostname
    chmod -R u=rwX,go=rX etc
)

say "importing $BASE_TAG"
tar --numeric-owner --owner=0 --group=0 -C "$ROOTFS" -c . \
    | docker import --message "kernelsmith sandbox test base (busybox)" - "$BASE_TAG" >/dev/null

build() {
    docker build --network none --pull=false --quiet \
        --build-arg "BASE=$BASE_TAG" --build-arg INSTALL=0 --label "kernelsmith.test-image=$HASH" \
        -t "$IMAGE_TAG" -f "$HERE/Dockerfile" "$HERE"
}
say "building $IMAGE_TAG from sandbox/Dockerfile (BASE=$BASE_TAG, INSTALL=0)"
# The classic builder never contacts a registry for a local FROM; BuildKit is the
# fallback where the classic builder is gone.
DOCKER_BUILDKIT=0 build >/dev/null 2>"$ROOTFS.build.log" || {
    cat "$ROOTFS.build.log" >&2
    say "classic builder failed; trying BuildKit"
    DOCKER_BUILDKIT=1 build >/dev/null
}
rm -f "$ROOTFS.build.log"
# Remove the versions this build replaced (only those: other dangling images are not ours).
for old in $OLD_IDS; do
    docker image rm "$old" >/dev/null 2>&1 || true
done

say "checking $IMAGE_TAG"
out=$(docker run --rm --network none --read-only --tmpfs /tmp --user 65534:65534 "$IMAGE_TAG" \
    sh -c 'id -u; test -w /tmp && echo tmp-ok') || die "a container of $IMAGE_TAG does not run"
[ "$out" = "$(printf '65534\ntmp-ok')" ] || die "unexpected output from $IMAGE_TAG: $out"
say "built $IMAGE_TAG ($(docker image inspect --format '{{.Id}}' "$IMAGE_TAG" | cut -c1-19))"
