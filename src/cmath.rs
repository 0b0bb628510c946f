//! The C math functions the `ddcoterm` binary calls (Luau's `math` library, and `f64` methods that compile to
//! libm calls), defined here from the `libm` crate (musl's implementations, in Rust) instead of taken from
//! glibc's libm.so.6.
//!
//! Why: with nothing left to resolve from it, the linker (`--as-needed`) no longer records libm.so.6 as
//! needed, and the dynamic loader has one shared library fewer to find, map and relocate at every start,
//! which is 0.05-0.11 ms of every shim call on the reference VM (docs/policy.md, "What a shim call costs").
//! The binary's own definitions take precedence over any archive at link time; the list is the set of libm
//! symbols the binary imported before (`nm -D --undefined-only`), and `tests/link_mode.rs` fails if libm.so.6
//! is needed again (a new math function used somewhere), so that it is added here.
//!
//! Results may differ from glibc's in the last bit; both are within an ulp, and nothing in ddcoterm depends on
//! the last bit of a sine.
#![allow(unsafe_code)] // `no_mangle` gives the C names; frexp/modf write through the pointers C passes.

use std::ffi::c_int;

macro_rules! unary {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        extern "C" fn $name(x: f64) -> f64 {
            libm::$name(x)
        }
    )*};
}

unary!(acos, asin, atan, cos, cosh, exp, log, log10, log2, sin, sinh, tan, tanh);

#[unsafe(no_mangle)]
extern "C" fn atan2(y: f64, x: f64) -> f64 {
    libm::atan2(y, x)
}

#[unsafe(no_mangle)]
extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[unsafe(no_mangle)]
extern "C" fn ldexp(x: f64, n: c_int) -> f64 {
    libm::ldexp(x, n)
}

/// # Safety
/// `exp` points to a writable `int`, as C's contract for `frexp` requires of the caller.
#[unsafe(no_mangle)]
unsafe extern "C" fn frexp(x: f64, exp: *mut c_int) -> f64 {
    let (m, e) = libm::frexp(x);
    // SAFETY: the caller passes a valid pointer (C's contract for frexp).
    unsafe { exp.write(e) };
    m
}

/// # Safety
/// `int_part` points to a writable `double`, as C's contract for `modf` requires of the caller.
#[unsafe(no_mangle)]
unsafe extern "C" fn modf(x: f64, int_part: *mut f64) -> f64 {
    let (frac, int) = libm::modf(x);
    // SAFETY: the caller passes a valid pointer (C's contract for modf).
    unsafe { int_part.write(int) };
    frac
}
