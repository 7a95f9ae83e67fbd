#!/usr/bin/env bash
# Check that the camera side installs and runs on 64-bit ARM: a Debian
# bookworm arm64 chroot under qemu-user runs `secfepas camera run` (from the
# [camera] extra, aarch64 wheels only) against an x86_64 edge on loopback,
# with real mutual TLS and real secure inference. Run as root; about 10 min.
# Usage: bash tools/aarch64_check.sh [WORKDIR]   (default /var/tmp/secfepas-arm)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/var/tmp/secfepas-arm}
root=$work/root
mkdir -p "$work"

if [ ! -x "$root/venv/bin/python" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support debootstrap >/dev/null
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable qemu-aarch64 || true
    [ -d "$root/usr" ] || debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$root"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" update-ca-certificates >/dev/null
    chroot "$root" python3 -m venv /venv
fi
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"   # never bind /sys: onnxruntime segfaults under qemu

rm -rf "$work/dist" && mkdir -p "$work/dist"
python3 -m pip wheel -q --no-deps -w "$work/dist" "$repo"
cp "$work"/dist/secfepas_sdk-*.whl "$root/tmp/"
wheel=$(basename "$(ls "$work"/dist/secfepas_sdk-*.whl)")
chroot "$root" /venv/bin/pip install -q --only-binary=:all: --force-reinstall "/tmp/$wheel[camera]"
chroot "$root" /venv/bin/python -c "import platform; print('camera python', platform.python_version(), platform.machine())"

# Edge on this (x86_64) host, camera in the chroot, same loopback.
rm -rf "$work/site" && mkdir -p "$work/site/models"
secfepas certs init "$work/site/pki" --camera arm-cam >/dev/null
cp -r "$(python3 -c 'from secfepas_sdk.models.bundled import demo_model_path; print(demo_model_path())')" "$work/site/models/"
mkdir -p "$root/tmp/pki" && cp "$work"/site/pki/ca.pem "$work"/site/pki/cameras/arm-cam.* "$root/tmp/pki/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secfepas edge serve --listen "127.0.0.1:$port" --model-dir "$work/site/models" --metrics-port 0 \
    --ca "$work/site/pki/ca.pem" --cert "$work/site/pki/edge.pem" --key "$work/site/pki/edge.key" &
edge=$!
trap 'kill $edge 2>/dev/null || true' EXIT
sleep 3
chroot "$root" /bin/sh -c "cd /tmp && /venv/bin/secfepas camera run --edge 127.0.0.1:$port \
    --ca /tmp/pki/ca.pem --cert /tmp/pki/arm-cam.pem --key /tmp/pki/arm-cam.key \
    --model demo-pain-cnn --max-frames 2 --json \
    --source \"\$(/venv/bin/python -c 'from secfepas_sdk.models.bundled import sample_video_path; print(sample_video_path())')\""
echo "aarch64 camera: OK"
