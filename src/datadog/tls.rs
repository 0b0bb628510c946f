//! The TLS crypto provider for every HTTPS client (Datadog, bundle pulls): rustls with ring, installed once
//! per process before a client is built. reqwest is built without a provider of its own (aws-lc), which
//! would add 1.4 MB and thousands of relocations to every start of the binary, the shim path included.

use std::sync::Once;

/// Makes ring the process's default rustls provider; idempotent and cheap after the first call.
pub fn install_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only when another provider is already the default, which is then just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
