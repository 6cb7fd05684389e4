#!/usr/bin/env bash
# The IMAP tests run a real Dovecot (Debian's dovecot-imapd): each test starts its own server, with its own
# config, ports and Maildir in a temp dir (tests/mailservers/dovecot.py), never the system's service.
# Installs it when missing and this user can; otherwise names the one command to run.
set -euo pipefail
dovecot="${DOVECOT_PATH:-/usr/sbin/dovecot}"
if [ -x "$dovecot" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's dovecot-imapd for the IMAP tests..."
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd >/dev/null
  # The package's postinst starts its own service where it can (init scripts run even without systemd). The
  # tests need nothing from it, and a stray system Dovecot on 143/993 is one more thing listening in CI.
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now dovecot.service >/dev/null 2>&1 || true
  fi
  /usr/sbin/dovecot stop >/dev/null 2>&1 || true  # the system instance (default config); none running is fine
  exit 0
fi
echo "The IMAP tests need Dovecot at $dovecot. Install it with:" >&2
echo "    sudo apt-get install -y --no-install-recommends dovecot-imapd" >&2
echo "(or point DOVECOT_PATH at a dovecot binary)" >&2
exit 1
