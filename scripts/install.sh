#!/usr/bin/env bash
# Install everything brokerflow needs on a fresh Debian machine:
# system packages (CJK fonts, HarfBuzz subsetter for fast PDF fonts, Pango, poppler-utils)
# and a virtual environment in .venv with the pinned Python dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

# fonts-wqy-microhei: Chinese text in PDFs (the fast primary font); the rarer characters of
# names fall back to fonts-noto-cjk (CJK Extension A), fonts-hanazono (HanaMinB: Extensions
# B-F) and fonts-babelstone-han (Extensions G/H in part); together about 90 MB download,
# 190 MB installed.  libharfbuzz-subset0: fast font subsetting;
# poppler-utils: pdftotext/pdffonts (tests); postgresql: server binaries for the PostgreSQL tests;
# chromium + chromium-driver: the browser tests of the Prefect UI and the archive page
APT_PACKAGES=(fonts-wqy-microhei fonts-noto-cjk fonts-hanazono fonts-babelstone-han fontconfig
              libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 poppler-utils postgresql
              chromium chromium-driver)
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
echo "brokerflow installed: activate with 'source .venv/bin/activate'"
