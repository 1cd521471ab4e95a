#!/usr/bin/env bash
# Installs the Debian packages the stack needs at run time (see STACK-NOTES): open3d needs libusb,
# Open3D's offscreen renderer needs Vulkan. As root it installs them; otherwise it prints the command.
set -u
missing=()
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || missing+=(libusb-1.0-0)
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || missing+=(libvulkan1 mesa-vulkan-drivers)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "mocap setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { echo "mocap setup: apt-get install ${missing[*]} failed" >&2; exit 1; }
else
    echo "mocap setup: missing system packages ${missing[*]}; install them with:" >&2
    echo "    sudo apt-get install -y ${missing[*]}" >&2
    echo "(open3d will not import without libusb-1.0-0; headless rendering needs libvulkan1)" >&2
fi
