# Sourced by tests/setup/install-*.sh: install Debian packages for tests that run real servers,
# when this is root with apt-get; otherwise (or when apt fails) say why and carry on, since the
# tests that need them skip, saying so. `apt-get update` runs only when something is installed.
#   apt_install_for WHAT TESTS PACKAGE...
apt_install_for() {
    local what="$1" tests="$2"
    shift 2
    if [ "$(id -u)" != 0 ]; then
        echo "$what is missing and this is not root; $tests will skip (as root: apt-get install $*)"
    elif ! command -v apt-get >/dev/null 2>&1; then
        echo "$what is missing and there is no apt-get; $tests will skip"
    else
        echo "installing Debian's $* (for $tests)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends -o DPkg::Lock::Timeout=300 "$@" >/dev/null; } \
            || echo "installing $* failed; $tests will skip"
    fi
    # The packages' own services may fail to start in a container: harmless, the tests run their own.
    return 0
}
