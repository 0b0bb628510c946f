#!/bin/sh
# Starts the bastion pod's sshd (bastion.sshd.enabled) as the pod's non-root user: host key from the Secret
# mounted at HOST_KEY (or a new one), authorized keys copied private, the Datadog keys handed to sessions,
# then sshd in the foreground, logging to stderr.
set -eu
umask 077
run=/run/ddcoterm-sshd
if [ -n "${HOST_KEY:-}" ] && [ -s "$HOST_KEY" ]; then
    cp "$HOST_KEY" "$run/ssh_host_ed25519_key"
else
    echo "ddcoterm-sshd: no host key Secret (bastion.sshd.hostKeySecret): generating one for this pod" >&2
    rm -f "$run/ssh_host_ed25519_key" "$run/ssh_host_ed25519_key.pub"
    ssh-keygen -q -t ed25519 -N '' -C "ddcoterm-bastion" -f "$run/ssh_host_ed25519_key"
fi
cp /etc/ddcoterm-sshd/authorized_keys "$run/authorized_keys"
mkdir -p "$HOME/.ssh"
: > "$HOME/.ssh/environment"
for var in DD_API_KEY DD_APP_KEY DD_SITE; do
    eval "value=\${$var:-}"
    [ -z "$value" ] || printf '%s=%s\n' "$var" "$value" >> "$HOME/.ssh/environment"
done
exec /usr/sbin/sshd -D -e -p "${SSHD_PORT:-2222}" -f /etc/ddcoterm-sshd/sshd_config
