#!/usr/bin/env bash
# The README's "run it" command: installs what a local cluster needs, builds
# rekube, and brings up the example platform's `dev` environment on a real
# local control plane. `rekube down dev` (same directory) removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/testbed-setup.sh helm
scripts/testbed-setup.sh control-plane-1.34
cargo build --release --locked -p rekube
cd examples/platform
../../target/release/rekube validate
../../target/release/rekube up dev
../../target/release/rekube status
