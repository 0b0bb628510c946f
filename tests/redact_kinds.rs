//! The specification of every built-in secret kind: samples that must be redacted and ones that must not.
//!
//! One table, one driver. Each positive sample names the exact secret text, which must be the only thing
//! replaced (by `[REDACTED:<kind>]`); each negative sample must come out byte for byte unchanged. The
//! second driver feeds every positive sample split at every byte boundary and expects the same output.

use ddcoterm::config::settings::RedactionSettings;
use ddcoterm::redact::Redactor;

struct Case {
    kind: &'static str,
    /// `(input, the secret within it that must vanish)`.
    redact: &'static [(&'static str, &'static str)],
    keep: &'static [&'static str],
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
const RSA_BLOCK: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----";
const OPENSSH_BLOCK: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\r\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\r\nQyNTUxOQAAACDrQyvD3eN6pGCZgQ8m9Qk1f0eU8Z3yJm0K8b6XH4q0bQAAAJgk2Ow1JNjs\r\n-----END OPENSSH PRIVATE KEY-----";
const PKCS8_BLOCK: &str =
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFvJ0Zp2mWqX4nWm4TzC1b1GmXhM2S0Gk8p8f7l1e9cR\n-----END PRIVATE KEY-----";
const PGP_BLOCK: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGBxS1kBCADc3xq7Y9o0k3\n=Q8vK\n-----END PGP PRIVATE KEY BLOCK-----";

const TABLE: &[Case] = &[
    Case {
        kind: "private_key",
        redact: &[
            (RSA_BLOCK, RSA_BLOCK),
            (OPENSSH_BLOCK, OPENSSH_BLOCK),
            (PKCS8_BLOCK, PKCS8_BLOCK),
            (PGP_BLOCK, PGP_BLOCK),
            ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----"),
        ],
        keep: &[
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUX\n-----END CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop",
            "Generating public/private ed25519 key pair.",
            "Your identification has been saved in /home/alice/.ssh/id_ed25519",
        ],
    },
    Case {
        kind: "aws_access_key_id",
        redact: &[
            ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
            ("aws_access_key_id = ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
            (r#"    "AccessKeyId": "ASIAJEXAMPLEXEG2JICE","#, "ASIAJEXAMPLEXEG2JICE"),
            ("export AWS_ACCESS_KEY_ID=AKIA2OGYBAH6STMMNXNN", "AKIA2OGYBAH6STMMNXNN"),
        ],
        keep: &[
            "AKIAIOSFODNN7EXAMPL",
            "MAKIAIOSFODNN7EXAMPLE",
            "AKIA is the prefix of long-term access key ids",
            "commit 3f786850e387550fdab836ed7e6dc881de23001b",
            "request 9b2f7c1e-4a5d-4e8f-9c3b-2d1a0f6e7b8c AKIAS",
        ],
    },
    Case {
        kind: "aws_secret_access_key",
        redact: &[
            ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            ("export AWS_SECRET_ACCESS_KEY=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"),
            (r#"        "SecretAccessKey": "9drTJvcXLB89EXAMPLELB8923FB892xMFI+ABCDE","#, "9drTJvcXLB89EXAMPLELB8923FB892xMFI+ABCDE"),
            ("AWS Secret Access Key [None]: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ],
        keep: &[
            "AWS Secret Access Key [None]: ",
            "AWS Secret Access Key [****************MPLE]: ",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY is a base64 blob with no key name",
            "see the aws_secret_access_key setting in ~/.aws/credentials",
        ],
    },
    Case {
        kind: "github_token",
        redact: &[
            ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
            ("GITHUB_TOKEN: gho_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5", "gho_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"),
            ("ghs_0123456789abcdefghijABCDEFGHIJ012345 used", "ghs_0123456789abcdefghijABCDEFGHIJ012345"),
            (
                "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopq",
                "github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopq",
            ),
        ],
        keep: &[
            "ghp_short",
            "Merge pull request #42 from ghp_feature/branch",
            "commit 3f786850e387550fdab836ed7e6dc881de23001b",
            "set github_pat_ in the environment",
        ],
    },
    Case {
        kind: "gitlab_token",
        redact: &[
            ("glpat-9Bx3kfZ2QmTq8vLwR1sN", "glpat-9Bx3kfZ2QmTq8vLwR1sN"),
            ("CI_JOB_TOKEN glrt-t1_AbCdEfGhIjKlMnOpQrStUv", "glrt-t1_AbCdEfGhIjKlMnOpQrStUv"),
        ],
        keep: &["glpat-", "glpat-short", "myglpat-9Bx3kfZ2QmTq8vLwR1sN"],
    },
    Case {
        kind: "slack_token",
        redact: &[
            ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
            ("SLACK=xoxp-2345678901-2345678901-34567890123-0123456789abcdef", "xoxp-2345678901-2345678901-34567890123-0123456789abcdef"),
        ],
        keep: &["xoxb-", "xoxo-hugs-and-kisses-forever", "xoxb-short"],
    },
    Case {
        kind: "slack_webhook",
        redact: &[(
            "https://hooks.slack.com/services/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",
            "T00A0B0C0/B01D2E3F4G5/a1B2c3D4e5F6g7H8i9J0k1L2",
        )],
        keep: &["https://hooks.slack.com/", "see hooks.slack.com/services/ in the Slack docs"],
    },
    Case {
        kind: "stripe_key",
        redact: &[
            ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            ("STRIPE_KEY=rk_live_51H8a2bC3dE4fG5hI6jK7lM8n", "rk_live_51H8a2bC3dE4fG5hI6jK7lM8n"),
            ("sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        ],
        keep: &["pk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_", "ask_live_4eC39HqLyjWDarjtT1zdp7dc"],
    },
    Case {
        kind: "openai_key",
        redact: &[
            ("sk-Ab3dEf6hIj9kLm2nOp5qRs8tT3BlbkFJuV1wXy4zA7bC0dE3fG6h", "sk-Ab3dEf6hIj9kLm2nOp5qRs8tT3BlbkFJuV1wXy4zA7bC0dE3fG6h"),
            (
                "OPENAI_API_KEY=sk-proj-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa9876543210abcdEFGH",
                "sk-proj-Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa9876543210abcdEFGH",
            ),
        ],
        keep: &[
            "disk-usage-report-2024-01-01",
            "task-0123456789abcdef0123456789abcdef",
            "sk-learn",
            "sk-abcdefghijklmnopqrstuvwxyzabcdefgh",
        ],
    },
    Case {
        kind: "google_api_key",
        redact: &[("key=AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe&q=x", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe")],
        keep: &["AIzaShort", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQeXYZ"],
    },
    Case {
        kind: "jwt",
        redact: &[(JWT, JWT), ("id_token: eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.c2lnbmF0dXJlc2lnbmF0dXJl", "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcCJ9.c2lnbmF0dXJlc2lnbmF0dXJl")],
        keep: &[
            "eyJhbGciOiJIUzI1NiJ9",
            "payload eyJmb28iOiJiYXIifQ== decoded",
            "SGVsbG8gd29ybGQsIHRoaXMgaXMgYSBiYXNlNjQgYmxvYg==",
        ],
    },
    Case {
        kind: "datadog_api_key",
        redact: &[
            ("DD_API_KEY=5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e", "5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e"),
            ("  api_key: 5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e", "5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e"),
            ("curl -H \"DD-API-KEY: 5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e\"", "5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e"),
            (r#"{"apiKey": "5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e"}"#, "5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e"),
        ],
        keep: &[
            "md5 5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e",
            "request_id=5f2b8c9d1e3a4f6b7c8d9e0a1b2c3d4e",
            "DD_API_KEY is not set",
        ],
    },
    Case {
        kind: "datadog_app_key",
        redact: &[
            ("DD_APP_KEY=3f786850e387550fdab836ed7e6dc881de23001b", "3f786850e387550fdab836ed7e6dc881de23001b"),
            ("application_key: 3f786850e387550fdab836ed7e6dc881de23001b", "3f786850e387550fdab836ed7e6dc881de23001b"),
        ],
        keep: &["commit 3f786850e387550fdab836ed7e6dc881de23001b", "app_key missing; set DD_APP_KEY"],
    },
    Case {
        kind: "url_credentials",
        redact: &[
            ("postgres://admin:s3cr3tP4ss@db.internal:5432/app", "s3cr3tP4ss"),
            ("git clone https://alice:hunter2@git.example.com/repo.git", "hunter2"),
            ("redis://:authpass123@cache:6379/0", "authpass123"),
        ],
        keep: &[
            "https://example.com/a:b@c",
            "ssh://git@github.com:22/org/repo.git",
            "http://localhost:8080/health",
            "mailto:user@example.com",
            "git@github.com:org/repo.git",
        ],
    },
    Case {
        kind: "authorization",
        redact: &[("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==")],
        keep: &["Authorization: required", "authorization failed for user alice"],
    },
    Case {
        kind: "bearer_token",
        redact: &[
            ("Authorization: Bearer abc123def456ghi789jkl", "abc123def456ghi789jkl"),
            ("curl -H 'authorization: bearer 0a1b2c3d4e5f6a7b8c9d'", "0a1b2c3d4e5f6a7b8c9d"),
        ],
        keep: &[
            "the bearer of this letter",
            "Bearer token required",
            "Authorization: Bearer",
            "Bearer authenticationschemes",
        ],
    },
    Case {
        kind: "password",
        redact: &[
            ("password=hunter2", "hunter2"),
            (r#"{"user": "alice", "password": "correct horse battery staple"}"#, "correct horse battery staple"),
            ("DB_PASSWORD='Tr0ub4dor&3'", "Tr0ub4dor&3"),
            ("  passwd: s3cret", "s3cret"),
            ("MYSQL_PASS=abc123", "abc123"),
            ("mysql --password=hunter2 -u root", "hunter2"),
        ],
        keep: &[
            "Password: ",
            "[sudo] password for alice: ",
            "password:",
            "Enter passphrase for key '/home/alice/.ssh/id_ed25519': ",
            "bypass=true",
            "passed: 10 tests",
            r#"{"password": ""}"#,
            "DB_PASSWORD_FILE=",
        ],
    },
    Case {
        kind: "secret",
        redact: &[
            ("client_secret=8Q7abcDEF", "8Q7abcDEF"),
            ("GITLAB_TOKEN=some-opaque-value", "some-opaque-value"),
            (r#"{"api_key": "not-hex-value-123"}"#, "not-hex-value-123"),
            ("SECRET_KEY='django-insecure-x1y2z3'", "django-insecure-x1y2z3"),
            (r#"{"accessToken": "opaque.value.1"}"#, "opaque.value.1"),
            ("Token: 0f3c9a77e1", "0f3c9a77e1"),
        ],
        keep: &[
            "secrets:",
            "kubectl get secret my-secret -o yaml",
            "max_tokens: 100",
            "tokenizer=bpe",
            "9b2f7c1e-4a5d-4e8f-9c3b-2d1a0f6e7b8c",
        ],
    },
];

fn redactor() -> Redactor {
    Redactor::from_settings(&RedactionSettings::default()).unwrap()
}

#[test]
fn every_kind_redacts_its_samples_and_keeps_lookalikes() {
    let r = redactor();
    let mut covered: Vec<&str> = Vec::new();
    for case in TABLE {
        covered.push(case.kind);
        let marker = format!("[REDACTED:{}]", case.kind);
        for (input, secret) in case.redact {
            assert!(input.contains(secret), "{}: bad table row {input:?}", case.kind);
            let expected = input.replacen(secret, &marker, 1);
            assert_eq!(r.redact_str(input), expected, "{}: must redact {input:?}", case.kind);
        }
        for input in case.keep {
            assert_eq!(r.redact_str(input), *input, "{}: must keep {input:?}", case.kind);
        }
    }
    for kind in Redactor::builtin_kinds() {
        assert!(covered.contains(&kind), "built-in kind {kind} has no row in the table");
    }
}

#[test]
fn every_sample_split_at_every_byte_gives_the_same_output() {
    let r = redactor();
    for case in TABLE {
        for (input, _) in case.redact {
            let line = format!("\x1b[32mINFO\x1b[0m got {input} ok\r\nnext line\r\n");
            let whole = r.redact_bytes(line.as_bytes());
            assert!(whole.windows(9).any(|w| w == b"[REDACTED"), "{}: {line:?}", case.kind);
            for i in 0..=line.len() {
                let mut s = r.stream();
                let mut out = s.push(&line.as_bytes()[..i]);
                out.extend(s.push(&line.as_bytes()[i..]));
                out.extend(s.finish());
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&whole),
                    "{}: split at {i} of {line:?}",
                    case.kind
                );
            }
            let mut s = r.stream();
            let mut out = Vec::new();
            for b in line.as_bytes() {
                out.extend(s.push(std::slice::from_ref(b)));
            }
            out.extend(s.finish());
            assert_eq!(out, whole, "{}: byte by byte {line:?}", case.kind);
        }
    }
}
