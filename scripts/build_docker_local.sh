#!/usr/bin/env bash
# Build docker/Dockerfile where no image registry is reachable (as on the development machine), then check the
# image: a Debian bookworm base made from Debian packages with debootstrap, imported into podman, and the
# Dockerfile built against it (BASE_IMAGE build-arg). Needs root (debootstrap, rootful podman) and
#   apt-get install podman buildah debootstrap runc
#
#   bash scripts/build_docker_local.sh            # base (once) + image + smoke test
#   DOCKER_BUILD_DIR=/somewhere bash scripts/build_docker_local.sh
#
# The base, podman's storage and its run state live in DOCKER_BUILD_DIR (default /work/docker-build), not in the
# repository. pip inside the build uses this host's pip setup (its config, local wheel folders and CA bundle),
# mounted read-only for the RUN steps only: nothing of it lands in the image.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${DOCKER_BUILD_DIR:-/work/docker-build}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TAG=${IMAGE_TAG:-localhost/vitpose-mocap:latest}
BASE=localhost/debian-bookworm-python:3.11
TORCH_INDEX=${TORCH_INDEX:-https://pypi.org/simple}  # download.pytorch.org is not reachable here
mkdir -p "$WORK"
# runc, not Debian's default crun: crun refuses this machine's hybrid cgroup v1/v2 layout ("cgroups in hybrid mode
# not supported"). Lower open-file/process limits: podman's defaults are above this host's hard limits, and
# raising them needs CAP_SYS_RESOURCE ("error setting rlimit ... operation not permitted").
podman=(podman --root "$WORK/storage" --runroot "$WORK/run" --runtime runc)
limits=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install podman buildah debootstrap runc" >&2; exit 2; }
done

if ! "${podman[@]}" image exists "$BASE"; then
    echo "== base image $BASE: Debian bookworm minbase + python3.11 from $MIRROR"
    if [ ! -x "$WORK/rootfs/usr/bin/python3" ]; then
        rm -rf "$WORK/rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
            bookworm "$WORK/rootfs" "$MIRROR"
    fi
    chroot "$WORK/rootfs" apt-get clean
    rm -rf "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -c . | "${podman[@]}" import --change 'CMD ["python3"]' - "$BASE"
fi

mounts=()
for path in /etc/pip.conf /opt/wheels /opt/pypi /opt/pypi-more /etc/ssl/certs/ca-certificates.crt; do
    [ -e "$path" ] && mounts+=(-v "$path:$path:ro")
done
[ -e "$HOME/.config/pip/pip.conf" ] && mounts+=(-v "$HOME/.config/pip/pip.conf:/etc/xdg/pip/pip.conf:ro")

echo "== image $TAG from docker/Dockerfile"
"${podman[@]}" build --network host "${limits[@]}" --build-arg BASE_IMAGE="$BASE" --build-arg TORCH_INDEX="$TORCH_INDEX" \
    "${mounts[@]}" -f docker/Dockerfile -t "$TAG" .

echo "== smoke test"
bash scripts/check_docker_image.sh "$TAG" "${podman[@]}"
