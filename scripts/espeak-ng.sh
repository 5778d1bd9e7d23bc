# Sourced by demo.sh and test.sh: install espeak-ng (a Debian package, not pip) when it is missing and
# this is a root shell with apt-get; otherwise say what to run. Usage: ensure_espeak_ng "WHAT NEEDS IT"
ensure_espeak_ng() {
    command -v espeak-ng >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
    else
        echo "espeak-ng is missing (sudo apt-get install espeak-ng): $1" >&2
    fi
}
