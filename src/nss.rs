//! User and group look-ups (the password and group databases, through NSS), in one place.
//!
//! The static shim binary (`ddcoterm-shim`, docs/policy.md) must never make one: statically linked glibc
//! `dlopen`s the NSS modules (`sss`, `ldap`, `systemd`) of whatever glibc the host has, which only works
//! against the exact glibc it was linked with, so on an SSSD or LDAP bastion a look-up would quietly find
//! nobody. That binary installs a hand-over with [`refuse_with`] before it reads anything: the first look-up
//! it would make (team layers, a snippet that reads `user`, `HOME` unset, an untrusted file's owner named in
//! an error) execs the full, dynamically linked `ddcoterm` instead, which then does the whole call itself.

use nix::unistd::{Gid, Group, Uid, User};
use std::sync::OnceLock;

static REFUSED: OnceLock<fn() -> !> = OnceLock::new();

/// From now on this process makes no look-up: each one calls `hand_over` (which never returns) instead.
pub fn refuse_with(hand_over: fn() -> !) {
    let _ = REFUSED.set(hand_over);
}

fn before_lookup() {
    if let Some(hand_over) = REFUSED.get() {
        hand_over();
    }
}

/// The password entry of `uid`; `None` when there is none or the database cannot be read.
pub fn user_by_uid(uid: Uid) -> Option<User> {
    before_lookup();
    User::from_uid(uid).ok().flatten()
}

/// The group entry of `gid`; `None` when there is none or the database cannot be read.
pub fn group_by_gid(gid: Gid) -> Option<Group> {
    before_lookup();
    Group::from_gid(gid).ok().flatten()
}

/// The group named `name`; `Ok(None)` when there is none, `Err` when the database cannot be read.
pub fn group_by_name(name: &str) -> nix::Result<Option<Group>> {
    before_lookup();
    Group::from_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_ups_answer_for_this_process() {
        // No hand-over is installed in the test binary: the look-ups are made.
        assert!(user_by_uid(Uid::from_raw(0)).is_some_and(|u| u.name == "root"));
        assert!(group_by_gid(Gid::from_raw(0)).is_some());
        assert!(group_by_name("root").unwrap().is_some());
    }
}
