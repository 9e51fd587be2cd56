#!/usr/bin/env bash
# Smoke test of a built image (scripts/build_docker_local.sh runs it; by hand: IMAGE then the engine command):
#   bash scripts/check_docker_image.sh localhost/vitpose-mocap:latest podman --runtime runc
# What the issue asks of the image: non-root, no build tools, the models volume, `pose-server --help`, the pose
# server on a video with a model from the volume, convert to FBX (headless Blender inside), the web app and
# the panel answering on published ports.
set -euo pipefail
IMAGE=$1
shift
engine=("$@")
[ ${#engine[@]} -gt 0 ] || engine=(docker)
limits=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
run=("${engine[@]}" run --rm "${limits[@]}")
vol=$(mktemp -d /tmp/vitpose-checkpoints.XXXXXX)
chmod 777 "$vol"  # the container's user (uid 1000) writes its model here
names=()
cleanup() {
    for n in "${names[@]}"; do "${engine[@]}" rm -f "$n" >/dev/null 2>&1 || true; done
    rm -rf "$vol"
}
trap cleanup EXIT
ok() { echo "ok   $*"; }

user=$("${run[@]}" "$IMAGE" sh -c 'id -un; id -u')
[ "$(echo "$user" | tail -1)" != 0 ] || { echo "FAIL runs as root" >&2; exit 1; }
ok "user: $(echo "$user" | tr '\n' ' ')"

tools=$("${run[@]}" "$IMAGE" sh -c 'for t in gcc cc g++ c++ make git ld as; do command -v $t; done; true')
[ -z "$tools" ] || { echo "FAIL build tools in the image: $tools" >&2; exit 1; }
ok "no compiler, make, git, linker or assembler"

volumes=$("${engine[@]}" image inspect --format '{{json .Config.Volumes}}' "$IMAGE")
[[ $volumes == *'"/app/checkpoints"'* ]] || { echo "FAIL volumes: $volumes" >&2; exit 1; }
ok "volume /app/checkpoints"

"${run[@]}" "$IMAGE" pose-server --help | head -3
ok "pose-server --help"

echo "-- a tiny random-weight ViTPose into the volume, the pose server and convert on 30 frames of the demo clip"
"${run[@]}" -v "$vol:/app/checkpoints" "$IMAGE" python -c \
    "from pose_server.vitpose.tiny import make_tiny_checkpoint; make_tiny_checkpoint('/app/checkpoints/tiny.pth')"
[ -s "$vol/tiny.pth" ] || { echo "FAIL nothing written to the volume" >&2; exit 1; }
ok "the container's user writes to the models volume"
model=(--checkpoint /app/checkpoints/tiny.pth --backend torch --detector full-frame --kpt-threshold 0)
"${run[@]}" -v "$vol:/app/checkpoints" "$IMAGE" sh -c "pose-server run --source resources/videos/default.mp4 \
    ${model[*]} --max-frames 30 --record /tmp/take.jsonl && test \$(wc -l < /tmp/take.jsonl) -ge 25"
ok "pose-server run: packets recorded"
"${run[@]}" -v "$vol:/app/checkpoints" "$IMAGE" sh -c "pose-server convert resources/videos/default.mp4 \
    ${model[*]} --max-frames 30 -o /tmp/out/take.fbx -o /tmp/out/take.bvh && ls -l /tmp/out \
    && test -s /tmp/out/take.fbx"
ok "pose-server convert: FBX and BVH written by the bpy inside"

echo "-- the web app (the image's default command) and the panel on published loopback ports"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
web_port=$(port)
panel_port=$(port)
names+=(vitpose-check-web vitpose-check-panel)
"${engine[@]}" run -d --name vitpose-check-web "${limits[@]}" -e POSE_WEB_TOKEN=check -p "127.0.0.1:$web_port:7860" \
    "$IMAGE" >/dev/null
"${engine[@]}" run -d --name vitpose-check-panel "${limits[@]}" -p "127.0.0.1:$panel_port:8501" \
    -e POSE_PANEL_TOKEN=check "$IMAGE" pose-server panel --address 0.0.0.0 >/dev/null  # beyond loopback: a password
wait_http() {  # url, what the page must contain
    for _ in $(seq 120); do
        if body=$(curl -fsS "$1" 2>/dev/null) && [[ $body == *"$2"* ]]; then return 0; fi
        sleep 1
    done
    return 1
}
wait_http "http://127.0.0.1:$web_port/" gradio || { "${engine[@]}" logs vitpose-check-web >&2; exit 1; }
ok "web app answers on :7860 (token required beyond loopback: set by POSE_WEB_TOKEN)"
wait_http "http://127.0.0.1:$panel_port/" Streamlit || { "${engine[@]}" logs vitpose-check-panel >&2; exit 1; }
ok "panel answers on :8501"
echo "image $IMAGE: all checks passed"
