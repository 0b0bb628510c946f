# /etc/profile.d/ddcoterm-record.sh (bastion pods): every interactive login shell becomes a recorded
# ddcoterm session. The recorded shell is itself a login shell; DDCOTERM_SESSION (set by ddcoterm inside a
# session) stops the recursion.
if [ -z "${DDCOTERM_SESSION:-}" ] && [ -t 0 ] && [ -t 1 ]; then
    case $- in
        *i*) exec ddcoterm ;;
    esac
fi
