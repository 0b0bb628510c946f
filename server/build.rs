//! Finds the web UI's third-party player files (`make web-assets` puts them in `.build/web-assets/`) and tells
//! the compiler where they are, so they are embedded in the binary; fails the build, saying what to run, when
//! they are missing.

use std::path::PathBuf;

const FILES: [&str; 3] = ["asciinema-player.js", "asciinema-player.css", "LICENSE-asciinema-player"];

fn main() {
    println!("cargo:rerun-if-env-changed=DDCOTERM_WEB_ASSETS");
    let dir = match std::env::var_os("DDCOTERM_WEB_ASSETS") {
        Some(d) => PathBuf::from(d),
        None => {
            let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
            manifest.join("..").join(".build").join("web-assets")
        }
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    let missing: Vec<&str> = FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
    if !missing.is_empty() {
        panic!(
            "\n\nddcoterm-server embeds the web UI's player, and {} is missing {}.\n\
             Run `make web-assets` (scripts/web-assets.sh: a pinned, sha256-checked PyPI package) first, or set \
             DDCOTERM_WEB_ASSETS to a directory holding {}.\n",
            dir.display(),
            missing.join(", "),
            FILES.join(", ")
        );
    }
    for f in FILES {
        println!("cargo:rerun-if-changed={}", dir.join(f).display());
    }
    println!("cargo:rustc-env=DDCOTERM_WEB_ASSETS_DIR={}", dir.display());
}
