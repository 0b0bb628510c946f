# /etc/profile.d/ddcoterm.sh: puts the system-wide ddcoterm shims first on PATH for login shells, so that
# guarded commands (kubectl, terraform, ...) go through ddcoterm's lints and rules. Installed by Ansible,
# the Helm DaemonSet or `ddcoterm shim create --system`.
ddcoterm_shims=/usr/local/lib/ddcoterm/overrides
case ":${PATH}:" in
    *":${ddcoterm_shims}:"*) ;;
    *) PATH="${ddcoterm_shims}:${PATH}"; export PATH ;;
esac
unset ddcoterm_shims
# Datadog keys for members of the group allowed to read them (the file is 0600 root unless a group is set).
if [ -r /etc/ddcoterm/datadog.env ] && [ -z "${DD_API_KEY:-}" ]; then
    set -a
    . /etc/ddcoterm/datadog.env
    set +a
fi
