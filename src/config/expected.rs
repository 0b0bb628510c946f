//! What a settings key takes, said the way a user would (`an integer`, `true or false`), from the type
//! names serde reports (`usize`, `a boolean`): for the message of a `--set` with a value of the wrong type.

use figment::error::{Actual, Kind};

/// A one-line explanation of why a value does not fit its key.
pub fn describe(kind: &Kind) -> String {
    match kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("expected {}, got {}", expected_type(expected), actual_value(actual))
        }
        Kind::UnknownVariant(v, expected) => format!("`{v}` is not one of: {}", expected.join(", ")),
        Kind::UnknownField(f, _) => format!("`{f}` is not a settings key"),
        Kind::MissingField(f) => format!("`{f}` is required here"),
        other => other.to_string(),
    }
}

/// serde's expectation in words.
fn expected_type(expected: &str) -> &str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "an integer (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" => "text",
        "a sequence" => "a list, e.g. [a, b]",
        e if e.starts_with("struct ") || e.starts_with("a map") => "a mapping of keys",
        e => e,
    }
}

/// What was given, in words.
fn actual_value(actual: &Actual) -> String {
    match actual {
        Actual::Str(s) => format!("the text {s:?}"),
        Actual::Bool(b) => format!("{b}"),
        Actual::Signed(n) => format!("{n}"),
        Actual::Unsigned(n) => format!("{n}"),
        Actual::Float(n) => format!("{n}"),
        Actual::Seq => "a list".into(),
        Actual::Map => "a mapping".into(),
        Actual::Unit => "nothing".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_become_words() {
        let k = Kind::InvalidType(Actual::Str("lots".into()), "usize".into());
        assert_eq!(describe(&k), "expected an integer (0 or more), got the text \"lots\"");
        let k = Kind::InvalidType(Actual::Str("maybe".into()), "a boolean".into());
        assert_eq!(describe(&k), "expected true or false, got the text \"maybe\"");
    }
}
