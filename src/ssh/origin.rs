//! Who an SSH session comes from: `SSH_CONNECTION` (client and server address and port) and the
//! `SSH_USER_AUTH` file sshd writes with `ExposeAuthInfo yes` (the methods that authenticated the user, with
//! the public key), turned into the key's `SHA256:` fingerprint exactly as `ssh-keygen -l` prints it.

use crate::model::SshOrigin;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The origin of the session this process runs in, from its environment; `None` outside sshd. A malformed
/// `SSH_CONNECTION` yields `None` and an unreadable or malformed auth file an origin without a key: metadata
/// never stops a session.
pub fn from_env() -> Option<SshOrigin> {
    let conn = std::env::var("SSH_CONNECTION").ok()?;
    let mut origin = match parse_connection(&conn) {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("ignoring SSH_CONNECTION: {e}");
            return None;
        }
    };
    if let Some(path) = std::env::var_os("SSH_USER_AUTH").filter(|p| !p.is_empty()) {
        match std::fs::read_to_string(&path) {
            Ok(text) => apply_auth_info(&mut origin, &text),
            Err(e) => {
                tracing::warn!("cannot read SSH_USER_AUTH {}: {e}", std::path::Path::new(&path).display())
            }
        }
    }
    Some(origin)
}

/// Parses `SSH_CONNECTION`: `CLIENT_ADDR CLIENT_PORT SERVER_ADDR SERVER_PORT`.
pub fn parse_connection(s: &str) -> Result<SshOrigin, String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [client, client_port, server, server_port] = parts[..] else {
        return Err(format!("expected `client_addr client_port server_addr server_port`, got {s:?}"));
    };
    let addr = |a: &str| -> Result<String, String> {
        // A link-local IPv6 address may carry its zone (`fe80::1%eth0`).
        let ip = a.split_once('%').map_or(a, |(ip, _)| ip);
        ip.parse::<IpAddr>().map(|_| a.to_string()).map_err(|_| format!("{a:?} is not an IP address"))
    };
    let port = |p: &str| p.parse::<u16>().map_err(|_| format!("{p:?} is not a port number"));
    Ok(SshOrigin {
        client_addr: addr(client)?,
        client_port: port(client_port)?,
        server_addr: addr(server)?,
        server_port: port(server_port)?,
        ..SshOrigin::default()
    })
}

/// Reads the `ExposeAuthInfo` text into `origin`: the last method line names how the user got in, and the
/// last `publickey TYPE BASE64` line gives the key (with `AuthenticationMethods` several lines are possible).
pub fn apply_auth_info(origin: &mut SshOrigin, text: &str) {
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut fields = line.split_whitespace();
        let Some(method) = fields.next() else { continue };
        origin.auth_method = Some(method.to_string());
        if method != "publickey" {
            continue;
        }
        if let (Some(kind), Some(b64)) = (fields.next(), fields.next()) {
            match fingerprint(kind, b64) {
                Ok(fp) => {
                    origin.key_type = Some(kind.to_string());
                    origin.key_fingerprint = Some(fp);
                }
                Err(e) => tracing::warn!("SSH_USER_AUTH: {e}"),
            }
        }
    }
}

/// `SHA256:` + unpadded base64 of the SHA-256 of the key blob, as `ssh-keygen -l` prints it. A certificate's
/// fingerprint is its certified key's (what ssh-keygen shows for a `-cert.pub` file).
pub fn fingerprint(kind: &str, b64: &str) -> Result<String, String> {
    let blob = STANDARD.decode(b64).map_err(|e| format!("{kind} key is not base64: {e}"))?;
    let blob = if kind.contains("-cert-v01@openssh.com") { certified_key(&blob)? } else { blob };
    Ok(format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob))))
}

/// The plain public key blob inside an OpenSSH certificate (PROTOCOL.certkeys): the type without its
/// `-cert-v01` part, then the key fields that follow the nonce.
fn certified_key(cert: &[u8]) -> Result<Vec<u8>, String> {
    let mut rest = cert;
    let kind = take_string(&mut rest)?;
    let kind = std::str::from_utf8(kind).map_err(|_| "certificate type is not text".to_string())?;
    let _nonce = take_string(&mut rest)?;
    let (plain, fields) = match kind {
        "ssh-ed25519-cert-v01@openssh.com" => ("ssh-ed25519", 1),
        "ssh-rsa-cert-v01@openssh.com" => ("ssh-rsa", 2),
        "ssh-dss-cert-v01@openssh.com" => ("ssh-dss", 4),
        "ecdsa-sha2-nistp256-cert-v01@openssh.com" => ("ecdsa-sha2-nistp256", 2),
        "ecdsa-sha2-nistp384-cert-v01@openssh.com" => ("ecdsa-sha2-nistp384", 2),
        "ecdsa-sha2-nistp521-cert-v01@openssh.com" => ("ecdsa-sha2-nistp521", 2),
        "sk-ssh-ed25519-cert-v01@openssh.com" => ("sk-ssh-ed25519@openssh.com", 2),
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com" => ("sk-ecdsa-sha2-nistp256@openssh.com", 3),
        other => return Err(format!("unknown certificate type {other:?}")),
    };
    let mut out = Vec::new();
    put_string(&mut out, plain.as_bytes());
    for _ in 0..fields {
        put_string(&mut out, take_string(&mut rest)?);
    }
    Ok(out)
}

/// One SSH wire-format `string` (u32 big-endian length, bytes); mpints have the same framing.
fn take_string<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let truncated = || "truncated certificate".to_string();
    let (len, rest) = buf.split_first_chunk::<4>().ok_or_else(truncated)?;
    let len = u32::from_be_bytes(*len) as usize;
    let (s, rest) = (rest.get(..len).ok_or_else(truncated)?, &rest[len..]);
    *buf = rest;
    Ok(s)
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixture keys generated with ssh-keygen; the expected fingerprints are `ssh-keygen -lf` output.
    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIAMeLvJUBfiyp7qKNUefTGa5tDdqya9sC2yRfzl3+mvA";
    const ED25519_FP: &str = "SHA256:Eic043cFKZcIsHM3Bq9AOdfK/dJ+FZRwTL/VWC0yZVo";
    const RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAABAQCv2gMiXoK4rypVl/wkDjkKvZ7QrosdoDjTp3+475BRxaSQ8Bi8Apio+W7phmtMaNPer+ixV/0NPjsj1wTauf6g41zImCCXFlZCb9eArN0Zsx/obTkeP25XzdbE2JBeNlm0fpMbhCPkk+ecf2lePklzyAnGpipA+Cf1V1K0ZbfHzkuNNmzk/90orhtz8hRykWmLVDci/MXgpEopDLG7fJmPJjSinrqC6D3XkFAz56P+saPYhxDwF3TAQ+LaPk3Q/N5B9gl3OLhZCQ9iW9c8DupDTgqyK9LFys3PzaVSBMvfYjadrEdBCaZWuZEq0PPW29kERvwXc1KMMxF4dpnMB8Kl";
    const RSA_FP: &str = "SHA256:bicEkVQySSfwh/lH7dJ9nikL09bRyuUtgqY5EMcn5kI";
    const ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHZuYic8W4vQ46PMaTTAHWKj2+4hG4f1KTjDD19wMPDulTTt2WZkce2xR4V9Pdj0iDd0MHo2eK6WaCsAB5O/g+o=";
    const ECDSA_FP: &str = "SHA256:0tquAmRmUuILR8ApUTcClbc9ktecwq52fWRulclNH64";
    // ED25519 above, certified by a throwaway CA (`ssh-keygen -s ca -I alice-cert -n alice user.pub`).
    const CERT: &str = "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIPCXhPbiu9nAjzygwSP9AW9XwcQW5iTl3b/jC0A5RUuPAAAAIAMeLvJUBfiyp7qKNUefTGa5tDdqya9sC2yRfzl3+mvAAAAAAAAAAAAAAAABAAAACmFsaWNlLWNlcnQAAAAJAAAABWFsaWNlAAAAAAAAAAD//////////wAAAAAAAACCAAAAFXBlcm1pdC1YMTEtZm9yd2FyZGluZwAAAAAAAAAXcGVybWl0LWFnZW50LWZvcndhcmRpbmcAAAAAAAAAFnBlcm1pdC1wb3J0LWZvcndhcmRpbmcAAAAAAAAACnBlcm1pdC1wdHkAAAAAAAAADnBlcm1pdC11c2VyLXJjAAAAAAAAAAAAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIJnQQblf3D6N0DQA+L+C8zbYxG2NQNLAfxejbvvJR4ApAAAAUwAAAAtzc2gtZWQyNTUxOQAAAEC1UArFCsRkrfoTEWTWMo2kaSEdQi5AMyL8yGoqGmuxGZ/qcFL7/8gIWO7vaB5UtpUF3GjiaeDdfl8+WwP2ce0P";

    #[test]
    fn fingerprints_match_ssh_keygen() {
        assert_eq!(fingerprint("ssh-ed25519", ED25519).unwrap(), ED25519_FP);
        assert_eq!(fingerprint("ssh-rsa", RSA).unwrap(), RSA_FP);
        assert_eq!(fingerprint("ecdsa-sha2-nistp256", ECDSA).unwrap(), ECDSA_FP);
        assert_eq!(fingerprint("ssh-ed25519-cert-v01@openssh.com", CERT).unwrap(), ED25519_FP);
    }

    #[test]
    fn bad_keys_are_errors_not_panics() {
        assert!(fingerprint("ssh-ed25519", "not base64!").is_err());
        assert!(fingerprint("ssh-ed25519-cert-v01@openssh.com", "AAAA").is_err());
        let truncated = &CERT[..120];
        assert!(fingerprint("ssh-ed25519-cert-v01@openssh.com", truncated).is_err());
    }

    #[test]
    fn connection_lines_parse_v4_v6_and_zones() {
        let o = parse_connection("192.0.2.7 50022 10.0.0.1 22").unwrap();
        assert_eq!((o.client_addr.as_str(), o.client_port), ("192.0.2.7", 50022));
        assert_eq!((o.server_addr.as_str(), o.server_port), ("10.0.0.1", 22));
        let o = parse_connection("2001:db8::5 40000 fe80::1%eth0 2222").unwrap();
        assert_eq!(
            (o.client_addr.as_str(), o.server_addr.as_str(), o.server_port),
            ("2001:db8::5", "fe80::1%eth0", 2222)
        );
        for bad in [
            "",
            "192.0.2.7 50022 10.0.0.1",
            "host 1 10.0.0.1 22",
            "192.0.2.7 99999 10.0.0.1 22",
            "1.2.3.4 1 5.6.7.8 22 extra",
        ] {
            assert!(parse_connection(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn auth_info_gives_method_type_and_fingerprint() {
        let mut o = SshOrigin::default();
        apply_auth_info(&mut o, &format!("publickey ssh-ed25519 {ED25519}\n"));
        assert_eq!(o.auth_method.as_deref(), Some("publickey"));
        assert_eq!(o.key_type.as_deref(), Some("ssh-ed25519"));
        assert_eq!(o.key_fingerprint.as_deref(), Some(ED25519_FP));

        // AuthenticationMethods publickey,keyboard-interactive: the key stays, the last method is named.
        let mut o = SshOrigin::default();
        apply_auth_info(&mut o, &format!("publickey ssh-rsa {RSA}\nkeyboard-interactive\n"));
        assert_eq!(
            (o.auth_method.as_deref(), o.key_fingerprint.as_deref()),
            (Some("keyboard-interactive"), Some(RSA_FP))
        );

        let mut o = SshOrigin::default();
        apply_auth_info(&mut o, "password\n");
        assert_eq!((o.auth_method.as_deref(), o.key_fingerprint), (Some("password"), None));
    }
}
