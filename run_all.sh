#!/usr/bin/env bash
# DiverGen-repro: set up .venv (once), then run the numbered notebooks of a profile with papermill,
# or the test suite.
#
#   ./run_all.sh                       all notebooks, demo profile (offline toy world, CPU)
#   ./run_all.sh --profile paper       the paper's settings (LVIS v1, real weights, GPUs)
#   ./run_all.sh --profile ablation    the papers' ablations on the toy world (CPU, ~85 min on 2 cores)
#   ./run_all.sh --only 02             one notebook        ./run_all.sh --from 03   that one and later
#   ./run_all.sh --set output_dir=X    override a parameter of every notebook (repeatable)
#   ./run_all.sh --setup-only          only create/update .venv
#   ./run_all.sh --detectron2 [SRC]    also build detectron2 into .venv (the paper profile's engine): from GitHub,
#                                      or from SRC, a local checkout or any pip source (~2-5 min, needs gcc)
#   ./run_all.sh --test [PYTEST ARGS]  the test suite
set -euo pipefail
cd "$(dirname "$0")"

DETECTRON2_GITHUB="git+https://github.com/facebookresearch/detectron2.git"
profile=demo
detectron2_source=""
runner_args=()
mode=notebooks
test_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
    --only) runner_args+=(--only "${2:?--only needs a notebook number}"); shift 2 ;;
    --from) runner_args+=(--from "${2:?--from needs a notebook number}"); shift 2 ;;
    --set) runner_args+=(--set "${2:?--set needs KEY=VALUE}"); shift 2 ;;
    --setup-only) mode=setup; shift ;;
    --detectron2)
      detectron2_source="$DETECTRON2_GITHUB"; shift
      if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then detectron2_source="$1"; shift; fi ;;
    --test) mode=test; shift; test_args=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_all.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

VENV=.venv
STAMP="$VENV/.divergen-installed"

find_python() {
  for py in python3.11 python3 python; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      echo "$py"; return
    fi
  done
  echo "run_all.sh: Python >= 3.11 is needed (python3.11 not found)" >&2
  exit 1
}

# WordNet 3.0 (category diversity reads it offline through NLTK) comes from Debian's packages.
ensure_wordnet() {
  [ -f /usr/share/wordnet/data.noun ] && [ -f /usr/share/wordnet/index.sense ] && return
  local pkgs=(wordnet-base wordnet-sense-index) sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 && { [ ${#sudo[@]} = 0 ] || sudo -n true 2>/dev/null; }; then
    echo "[setup] installing WordNet 3.0 (${pkgs[*]})"
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
      || { "${sudo[@]}" apt-get update -q >/dev/null 2>&1 && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; } \
      || echo "[setup] warning: could not install ${pkgs[*]}; category diversity will need them (or downloads allowed)" >&2
  else
    echo "[setup] note: WordNet not found; install ${pkgs[*]} (Debian/Ubuntu) for category diversity offline" >&2
  fi
}

setup() {
  local want
  want=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "[setup] $VENV is up to date"
    return
  fi
  local t0=$SECONDS
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$(find_python)" -m venv "$VENV"
  fi
  echo "[setup] installing dependencies from pyproject.toml (a few minutes the first time)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  # packages whose declared requirements would break the environment (see pyproject [tool.divergen-repro])
  mapfile -t nodeps < <("$VENV/bin/python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["divergen-repro"]["install-no-deps"]))')
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${nodeps[@]}"
  "$VENV/bin/python" -c 'import torch, torchvision, cv2, lvis, papermill, divergen_lib' \
    || { echo "[setup] the environment does not import; see the messages above" >&2; exit 1; }
  echo "$want" > "$STAMP"
  echo "[setup] done in $((SECONDS - t0)) s"
}

# detectron2 is on no package index: built from source against the venv's torch (no build isolation, so it
# sees that torch; its setup.py needs setuptools < 81). Skipped when built from the same source for this torch.
install_detectron2() {
  local source="$1" stamp="$VENV/.detectron2-source" want
  [ -d "$source" ] && source="$(cd "$source" && pwd)"
  want="$source torch=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c 'import detectron2' 2>/dev/null; then
    echo "[setup] detectron2 from $source is installed"
    return
  fi
  local t0=$SECONDS
  echo "[setup] building detectron2 from $source (a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "setuptools<81" wheel
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation "$source"
  "$VENV/bin/python" -c 'import detectron2._C' \
    || { echo "[setup] detectron2 was built but does not import; see the messages above" >&2; exit 1; }
  echo "$want" > "$stamp"
  echo "[setup] detectron2 done in $((SECONDS - t0)) s"
}

ensure_wordnet
setup
[ -z "$detectron2_source" ] || install_detectron2 "$detectron2_source"
case "$mode" in
  setup) exit 0 ;;
  test) exec "$VENV/bin/python" -m pytest "${test_args[@]}" ;;
  notebooks) exec "$VENV/bin/python" -m divergen_lib notebooks --profile "$profile" "${runner_args[@]}" ;;
esac
