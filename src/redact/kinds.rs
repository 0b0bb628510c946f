//! The built-in secret kinds (after Datadog Sensitive Data Scanner's secrets library), as plain data.
//!
//! Every kind is found through literal anchors (a prefilter over the whole stream) and then confirmed by a
//! regex anchored at the anchor (`^`), run only in a small window; this is what keeps redaction fast.
//! By convention the first capture group that takes part in a match is the secret (only it is replaced);
//! without one, the whole match is.

/// What the byte just before an anchor must not be, so that `task-...` is not an OpenAI key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Before {
    /// Anything may precede the anchor.
    Any,
    /// Not `[A-Za-z0-9_]`.
    NotWord,
    /// Not `[A-Za-z0-9_-]`.
    NotTok,
    /// Not an ASCII letter (so `bypass=` is no password).
    NotAlpha,
    /// Must be a URL scheme byte `[A-Za-z0-9+.-]` (the anchor is `://`).
    Scheme,
}

impl Before {
    pub(crate) fn allows(self, prev: Option<u8>) -> bool {
        let Some(b) = prev else { return self != Before::Scheme };
        match self {
            Before::Any => true,
            Before::NotWord => !(b.is_ascii_alphanumeric() || b == b'_'),
            Before::NotTok => !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            Before::NotAlpha => !b.is_ascii_alphabetic(),
            Before::Scheme => b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-'),
        }
    }
}

/// One built-in pattern. Several definitions may share a `name` (the replacement is `[REDACTED:<name>]`).
#[derive(Debug)]
pub(crate) struct KindDef {
    pub name: &'static str,
    /// Literal anchors the regex starts at.
    pub anchors: &'static [&'static str],
    /// Anchors are matched ASCII case-insensitively.
    pub ci: bool,
    pub before: Before,
    /// Anchored (`^`) at the anchor; see the module doc for the capture-group convention.
    pub regex: &'static str,
    /// Longest match looked for, in bytes from the anchor.
    pub max_len: usize,
    /// A self-contained token (its anchor is part of the secret) that a program may hard-wrap across lines.
    pub token: bool,
    /// Extra check on the secret bytes (fewer false positives on prose).
    pub validate: Option<fn(&[u8]) -> bool>,
}

fn has_digit(s: &[u8]) -> bool {
    s.iter().any(u8::is_ascii_digit)
}

/// Value forms after a key and a separator: `"..."` (JSON, with escapes), `'...'`, or a bare word. A quote
/// that is never closed (`PASSWORD="abc...` then end of line) still starts a secret: it runs to the line end.
macro_rules! assignment {
    ($keys:literal) => {
        concat!(
            r#"(?i-u)^(?:"#,
            $keys,
            r#")(?:\\?["'])?[ \t]*(?::=|=>|[:=])[ \t]*(?:"((?:[^"\\\r\n]|\\.){1,512})"?|'([^'\r\n]{1,512})'?|([^\s"',;&]{1,512}))"#
        )
    };
}

/// `name: value`, `"name": "value"`, `name=value`, with the value a fixed hex shape.
macro_rules! keyed_hex {
    ($keys:literal, $hex:literal) => {
        concat!(
            r#"(?i-u)^(?:"#,
            $keys,
            r#")(?:\\?["'])?[ \t]*(?::=|=>|[:=])[ \t]*["']?([a-f0-9]{"#,
            $hex,
            r#"})(?:[^A-Za-z0-9]|$)"#
        )
    };
}

pub(crate) const PRIVATE_KEY: &str = "private_key";
/// Header of a PEM / OpenSSH / PGP private key block.
pub(crate) const PEM_BEGIN: &str = r"(?-u)^-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----";
pub(crate) const PEM_END: &str = r"(?-u)^-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----";

const TOKEN_LEN: usize = 4096;

/// In priority order: when two kinds find a secret starting at the same byte, the earlier one names it.
pub(crate) const KINDS: &[KindDef] = &[
    KindDef {
        name: PRIVATE_KEY,
        anchors: &["-----BEGIN "],
        ci: false,
        before: Before::Any,
        regex: PEM_BEGIN,
        max_len: 128,
        token: false,
        validate: None,
    },
    KindDef {
        name: "aws_access_key_id",
        anchors: &["AKIA", "ASIA", "ABIA", "ACCA"],
        ci: false,
        before: Before::NotWord,
        regex: r"(?-u)^(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        max_len: 64,
        token: true,
        validate: None,
    },
    KindDef {
        name: "aws_secret_access_key",
        anchors: &["secret_access_key", "secret-access-key", "secretaccesskey", "secret access key"],
        ci: true,
        before: Before::Any,
        regex: r#"(?i-u)^secret[ _-]?access[ _-]?key(?:[ \t]*\[[^\]\r\n]{0,40}\])?(?:\\?["'])?[ \t]*(?::=|=>|[:=])[ \t]*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        max_len: 256,
        token: false,
        validate: None,
    },
    KindDef {
        name: "github_token",
        anchors: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        ci: false,
        before: Before::NotWord,
        regex: r"(?-u)^gh[pousr]_[A-Za-z0-9]{36,251}\b",
        max_len: 300,
        token: true,
        validate: None,
    },
    KindDef {
        name: "github_token",
        anchors: &["github_pat_"],
        ci: false,
        before: Before::NotWord,
        regex: r"(?-u)^github_pat_[A-Za-z0-9_]{80,240}\b",
        max_len: 300,
        token: true,
        validate: None,
    },
    KindDef {
        name: "gitlab_token",
        anchors: &["glpat-", "glrt-", "gldt-", "glptt-"],
        ci: false,
        before: Before::NotTok,
        regex: r"(?-u)^gl(?:pat|rt|dt|ptt)-[A-Za-z0-9_-]{20,}",
        max_len: 300,
        token: true,
        validate: None,
    },
    KindDef {
        name: "slack_webhook",
        anchors: &["hooks.slack.com/"],
        ci: false,
        before: Before::Any,
        regex: r"(?-u)^hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_/+-]{16,})",
        max_len: 512,
        token: true,
        validate: None,
    },
    KindDef {
        name: "slack_token",
        anchors: &["xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxr-", "xoxs-", "xoxe-"],
        ci: false,
        before: Before::NotWord,
        regex: r"(?-u)^xox[abposre]-[A-Za-z0-9-]{10,}",
        max_len: 512,
        token: true,
        validate: Some(has_digit),
    },
    KindDef {
        name: "stripe_key",
        anchors: &["sk_live_", "rk_live_", "sk_test_", "rk_test_"],
        ci: false,
        before: Before::NotWord,
        regex: r"(?-u)^[sr]k_(?:live|test)_[A-Za-z0-9]{20,}",
        max_len: 512,
        token: true,
        validate: None,
    },
    KindDef {
        name: "openai_key",
        anchors: &["sk-"],
        ci: false,
        before: Before::NotTok,
        regex: r"(?-u)^sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|[A-Za-z0-9]{32,}\b)",
        max_len: 512,
        token: true,
        validate: Some(has_digit),
    },
    KindDef {
        name: "google_api_key",
        anchors: &["AIza"],
        ci: false,
        before: Before::NotTok,
        regex: r"(?-u)^(AIza[0-9A-Za-z_-]{35})(?:[^0-9A-Za-z_-]|$)",
        max_len: 64,
        token: true,
        validate: None,
    },
    KindDef {
        name: "jwt",
        anchors: &["eyJ"],
        ci: false,
        before: Before::NotTok,
        regex: r"(?-u)^eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{16,}",
        max_len: TOKEN_LEN,
        token: true,
        validate: None,
    },
    KindDef {
        name: "azure_storage_key",
        anchors: &["accountkey"],
        ci: true,
        before: Before::NotWord,
        regex: r#"(?i-u)^accountkey[ \t]*[=:][ \t]*["']?([A-Za-z0-9+/]{86,88}={0,2})"#,
        max_len: 256,
        token: false,
        validate: None,
    },
    KindDef {
        name: "azure_sas_signature",
        anchors: &["sig="],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^sig=([A-Za-z0-9%+/=_-]{30,200})"#,
        max_len: 256,
        token: false,
        validate: None,
    },
    KindDef {
        name: "npm_token",
        anchors: &["npm_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^npm_[A-Za-z0-9]{36}\b"#,
        max_len: 64,
        token: true,
        validate: Some(has_digit),
    },
    KindDef {
        name: "sendgrid_key",
        anchors: &["SG."],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"#,
        max_len: 96,
        token: true,
        validate: None,
    },
    KindDef {
        name: "gcp_private_key_id",
        anchors: &["private_key_id", "private-key-id", "privatekeyid"],
        ci: true,
        before: Before::Any,
        regex: r#"(?i-u)^private[_-]?key[_-]?id(?:\\?["'])?[ \t]*(?::=|=>|[:=])[ \t]*["']?([a-f0-9]{40})(?:[^A-Za-z0-9]|$)"#,
        max_len: 128,
        token: false,
        validate: None,
    },
    KindDef {
        name: "anthropic_key",
        anchors: &["sk-ant-"],
        ci: false,
        before: Before::NotTok,
        regex: r#"(?-u)^sk-ant-[A-Za-z0-9_-]{32,}"#,
        max_len: 512,
        token: true,
        validate: None,
    },
    KindDef {
        name: "huggingface_token",
        anchors: &["hf_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^hf_[A-Za-z0-9]{34,40}\b"#,
        max_len: 64,
        token: true,
        validate: Some(has_digit),
    },
    KindDef {
        name: "vault_token",
        anchors: &["hvs.", "hvb.", "hvr."],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^hv[sbr]\.[A-Za-z0-9_-]{24,}"#,
        max_len: 512,
        token: true,
        validate: None,
    },
    KindDef {
        name: "digitalocean_token",
        anchors: &["dop_v1_", "doo_v1_", "dor_v1_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^do[por]_v1_[a-f0-9]{64}"#,
        max_len: 96,
        token: true,
        validate: None,
    },
    KindDef {
        name: "pypi_token",
        anchors: &["pypi-AgEIcHlwaS5vcmc"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"#,
        max_len: 512,
        token: true,
        validate: None,
    },
    KindDef {
        name: "shopify_token",
        anchors: &["shpat_", "shpca_", "shppa_", "shpss_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"#,
        max_len: 64,
        token: true,
        validate: None,
    },
    KindDef {
        name: "postman_key",
        anchors: &["PMAK-"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^PMAK-[a-f0-9]{24}-[a-f0-9]{34}"#,
        max_len: 96,
        token: true,
        validate: None,
    },
    KindDef {
        name: "linear_key",
        anchors: &["lin_api_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^lin_api_[A-Za-z0-9]{40}"#,
        max_len: 64,
        token: true,
        validate: None,
    },
    KindDef {
        name: "grafana_token",
        anchors: &["glsa_", "glc_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^(?:glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|glc_[A-Za-z0-9+/]{32,}={0,2})"#,
        max_len: 512,
        token: true,
        validate: None,
    },
    KindDef {
        name: "newrelic_key",
        anchors: &["NRAK-"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^NRAK-[A-Z0-9]{27}"#,
        max_len: 64,
        token: true,
        validate: None,
    },
    KindDef {
        name: "age_secret_key",
        anchors: &["AGE-SECRET-KEY-1"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"#,
        max_len: 96,
        token: true,
        validate: None,
    },
    KindDef {
        name: "doppler_token",
        anchors: &["dp.pt.", "dp.st.", "dp.sa.", "dp.ct."],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^dp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,44}"#,
        max_len: 64,
        token: true,
        validate: None,
    },
    KindDef {
        name: "databricks_token",
        anchors: &["dapi"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^dapi[a-f0-9]{32}(?:-[0-9])?\b"#,
        max_len: 64,
        token: true,
        validate: Some(has_digit),
    },
    KindDef {
        name: "rubygems_key",
        anchors: &["rubygems_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^rubygems_[a-f0-9]{48}"#,
        max_len: 64,
        token: true,
        validate: None,
    },
    KindDef {
        name: "sentry_token",
        anchors: &["sntrys_", "sntryu_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^sntry[su]_[A-Za-z0-9+/=_-]{40,}"#,
        max_len: 512,
        token: true,
        validate: None,
    },
    KindDef {
        name: "pulumi_token",
        anchors: &["pul-"],
        ci: false,
        before: Before::NotTok,
        regex: r#"(?-u)^pul-[a-f0-9]{40}"#,
        max_len: 64,
        token: true,
        validate: None,
    },
    KindDef {
        name: "discord_webhook",
        anchors: &["discord.com/api/webhooks/", "discordapp.com/api/webhooks/"],
        ci: false,
        before: Before::Any,
        regex: r#"(?-u)^discord(?:app)?\.com/api/webhooks/([0-9]{5,30}/[A-Za-z0-9_-]{40,100})"#,
        max_len: 256,
        token: true,
        validate: None,
    },
    KindDef {
        name: "heroku_key",
        anchors: &["HRKU-"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^HRKU-[A-Za-z0-9_-]{40,}"#,
        max_len: 256,
        token: true,
        validate: None,
    },
    KindDef {
        name: "atlassian_token",
        anchors: &["ATATT3"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^ATATT3[A-Za-z0-9_=-]{100,}"#,
        max_len: 512,
        token: true,
        validate: None,
    },
    KindDef {
        name: "square_token",
        anchors: &["sq0atp-", "sq0csp-", "EAAA"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^(?:sq0(?:atp|csp)-[0-9A-Za-z_-]{22,43}|EAAA[A-Za-z0-9_-]{60}\b)"#,
        max_len: 128,
        token: true,
        validate: None,
    },
    KindDef {
        name: "dockerhub_token",
        anchors: &["dckr_pat_"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^dckr_pat_[A-Za-z0-9_-]{27,}"#,
        max_len: 128,
        token: true,
        validate: None,
    },
    KindDef {
        name: "alibaba_access_key_id",
        anchors: &["LTAI"],
        ci: false,
        before: Before::NotWord,
        regex: r#"(?-u)^LTAI[A-Za-z0-9]{20}\b"#,
        max_len: 64,
        token: true,
        validate: Some(has_digit),
    },
    KindDef {
        name: "datadog_api_key",
        anchors: &["api_key", "api-key", "apikey"],
        ci: true,
        before: Before::Any,
        regex: keyed_hex!("api[_-]?key", "32"),
        max_len: 128,
        token: false,
        validate: None,
    },
    KindDef {
        name: "datadog_app_key",
        anchors: &["app_key", "app-key", "appkey", "application_key", "application-key", "applicationkey"],
        ci: true,
        before: Before::Any,
        regex: keyed_hex!("app(?:lication)?[_-]?key", "40"),
        max_len: 128,
        token: false,
        validate: None,
    },
    KindDef {
        name: "url_credentials",
        anchors: &["://"],
        ci: false,
        before: Before::Scheme,
        regex: r#"(?-u)^://[^\s:/@?#"'<>\[\]]*:([^\s/@?#"'<>]+)@[A-Za-z0-9\[]"#,
        max_len: 512,
        token: false,
        validate: None,
    },
    KindDef {
        name: "authorization",
        anchors: &["authorization"],
        ci: true,
        before: Before::Any,
        regex: r#"(?i-u)^authorization(?:\\?["'])?[ \t]*[:=][ \t]*["']?(?:basic|token|bot|digest)[ \t]+([A-Za-z0-9._~+/=-]{8,})"#,
        max_len: 1024,
        token: false,
        validate: None,
    },
    KindDef {
        name: "bearer_token",
        anchors: &["bearer"],
        ci: true,
        before: Before::NotWord,
        regex: r"(?i-u)^bearer[ \t]+([A-Za-z0-9._~+/-]{16,}=*)",
        max_len: TOKEN_LEN,
        token: false,
        validate: Some(has_digit),
    },
    KindDef {
        name: "password",
        anchors: &["password", "passwd", "passphrase"],
        ci: true,
        before: Before::Any,
        regex: assignment!("password|passwd|passphrase"),
        max_len: 640,
        token: false,
        validate: None,
    },
    KindDef {
        name: "password",
        anchors: &["pass"],
        ci: true,
        before: Before::NotAlpha,
        regex: assignment!("pass"),
        max_len: 640,
        token: false,
        validate: None,
    },
    KindDef {
        name: "secret",
        anchors: &[
            "secret",
            "secret_access_key",
            "secret-access-key",
            "secretaccesskey",
            "token",
            "api_key",
            "api-key",
            "apikey",
            "app_key",
            "app-key",
            "appkey",
            "application_key",
            "application-key",
            "applicationkey",
            "access_key",
            "access-key",
            "accesskey",
            "auth_key",
            "auth-key",
        ],
        ci: true,
        before: Before::Any,
        regex: assignment!(
            "secret[_-]?access[_-]?key|secret(?:[_-]?key)?|token|api[_-]?key|app(?:lication)?[_-]?key|access[_-]?key|auth[_-]?key"
        ),
        max_len: 640,
        token: false,
        validate: None,
    },
];
