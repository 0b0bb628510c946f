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
            (r#"export PASSWORD="abc def ghi"#, "abc def ghi"),
            ("DB_PASS='unterminated single", "unterminated single"),
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
    Case {
        kind: "azure_storage_key",
        redact: &[("DefaultEndpointsProtocol=https;AccountName=prodlogs;AccountKey=EO5GHrWnn/71vUFYvlIVv95hNUx9S46gCaKGRF+mUe5SqKBjCh99sRbriMm7NfP/LAAOoSCcEFc2IzyBVQ4tF4==;EndpointSuffix=core.windows.net", "EO5GHrWnn/71vUFYvlIVv95hNUx9S46gCaKGRF+mUe5SqKBjCh99sRbriMm7NfP/LAAOoSCcEFc2IzyBVQ4tF4==")],
        keep: &[
            "AccountKey=short",
            "the AccountKey setting",
        ],
    },
    Case {
        kind: "azure_sas_signature",
        redact: &[("https://prodlogs.blob.core.windows.net/c?sv=2022-11-02&ss=b&sp=rl&se=2026-12-31&sig=wuKSxyp1Q8RV0TOw5j59lKAtpIAi6hoEaN2rc%2Bgm%3D", "wuKSxyp1Q8RV0TOw5j59lKAtpIAi6hoEaN2rc%2Bgm%3D")],
        keep: &[
            "sig=abc",
            "git log --show-signature",
        ],
    },
    Case {
        kind: "npm_token",
        redact: &[("//registry.local/:_authToken is npm_t6yNBrbKUj2wmSZt1fZ8ugZNYA3IJVcqjC0u", "npm_t6yNBrbKUj2wmSZt1fZ8ugZNYA3IJVcqjC0u")],
        keep: &[
            "npm_config_cache=/tmp",
            "echo $npm_package_version",
        ],
    },
    Case {
        kind: "sendgrid_key",
        redact: &[("SENDGRID=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", "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")],
        keep: &[
            "SG.short.value",
        ],
    },
    Case {
        kind: "gcp_private_key_id",
        redact: &[("  \"private_key_id\": \"49201c8999dde290c5ff0ce20151c072e0b870fd\",", "49201c8999dde290c5ff0ce20151c072e0b870fd")],
        keep: &[
            "\"private_key_id\": \"\"",
            "private_key_id: abc",
        ],
    },
    Case {
        kind: "anthropic_key",
        redact: &[("claude sk-ant-api03-hSEhi3rzATTUC_097ljWH1MbCqlj0BPzEdSBHhrwEgHJVwFd_JgG7T29UxT--Fq5_f3THtt4oyrJ8u3fUrp-m4fKUw", "sk-ant-api03-hSEhi3rzATTUC_097ljWH1MbCqlj0BPzEdSBHhrwEgHJVwFd_JgG7T29UxT--Fq5_f3THtt4oyrJ8u3fUrp-m4fKUw")],
        keep: &[
            "sk-ant-",
        ],
    },
    Case {
        kind: "huggingface_token",
        redact: &[("hub hf_Kl450EiFQA6WLHpDVFeVmEbcvMCuTCpeYJ", "hf_Kl450EiFQA6WLHpDVFeVmEbcvMCuTCpeYJ")],
        keep: &[
            "hf_transfer enabled",
            "hf_hub_download_timeout_seconds_total_xyz",
        ],
    },
    Case {
        kind: "vault_token",
        redact: &[("VAULT hvs.QmHDZxiMfGDF7vUWCqxm6WDAdpCIF6KDYMPEL4SmKEFvHm1eqiUvolgmYeY6LHzTNqcdCQEkU6HojQc4P4h8KLtb_1", "hvs.QmHDZxiMfGDF7vUWCqxm6WDAdpCIF6KDYMPEL4SmKEFvHm1eqiUvolgmYeY6LHzTNqcdCQEkU6HojQc4P4h8KLtb_1")],
        keep: &[
            "hvs.short",
        ],
    },
    Case {
        kind: "digitalocean_token",
        redact: &[("doctl dop_v1_fceb110bbba328cf113f4fff7ad86deab2d0da65c97e86a3180e95e48ebaef64", "dop_v1_fceb110bbba328cf113f4fff7ad86deab2d0da65c97e86a3180e95e48ebaef64")],
        keep: &[
            "dop_v1_abc",
        ],
    },
    Case {
        kind: "pypi_token",
        redact: &[("twine pypi-AgEIcHlwaS5vcmcYbFcefPLfgWOS7uI1zBPBZ3hLxEYLMe2QmjzkGnLhcnB0i964f3jOJd0pS0y", "pypi-AgEIcHlwaS5vcmcYbFcefPLfgWOS7uI1zBPBZ3hLxEYLMe2QmjzkGnLhcnB0i964f3jOJd0pS0y")],
        keep: &[
            "pypi-AgEIcHlwaS5vcmc",
        ],
    },
    Case {
        kind: "shopify_token",
        redact: &[("shop 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", "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")],
        keep: &[
            "shpat_short",
        ],
    },
    Case {
        kind: "postman_key",
        redact: &[("postman PMAK-1631b15e2cd93552c48a40cc-db17e304b01d2b57c713688bc46835ee5c", "PMAK-1631b15e2cd93552c48a40cc-db17e304b01d2b57c713688bc46835ee5c")],
        keep: &[
            "PMAK-123",
        ],
    },
    Case {
        kind: "linear_key",
        redact: &[("linear lin_api_yTf98wlCYht9ygo7vgbyRGrhM944latRpIr2yoSX", "lin_api_yTf98wlCYht9ygo7vgbyRGrhM944latRpIr2yoSX")],
        keep: &[
            "lin_api_short",
        ],
    },
    Case {
        kind: "grafana_token",
        redact: &[("grafana glsa_UzVb62cFDfmAOoXoiOQpOWMz4FaFspyJ_4ecd57fc", "glsa_UzVb62cFDfmAOoXoiOQpOWMz4FaFspyJ_4ecd57fc")],
        keep: &[
            "glc_short",
        ],
    },
    Case {
        kind: "newrelic_key",
        redact: &[("newrelic NRAK-LU2CFIU3V8ZC7863YXXFV75E5JU", "NRAK-LU2CFIU3V8ZC7863YXXFV75E5JU")],
        keep: &[
            "NRAK-SHORT",
        ],
    },
    Case {
        kind: "age_secret_key",
        redact: &[("# AGE-SECRET-KEY-1045ZQTA37G9SR8XTZF4REVQHES2WDHZ4ZFS28TPC7CVD905KTF7NVYGLXZ", "AGE-SECRET-KEY-1045ZQTA37G9SR8XTZF4REVQHES2WDHZ4ZFS28TPC7CVD905KTF7NVYGLXZ")],
        keep: &[
            "AGE-SECRET-KEY-1",
        ],
    },
    Case {
        kind: "doppler_token",
        redact: &[("doppler dp.st.Ddrf48naJQAIng92j7s7OKSrB7TxMImoZkq2RTbT0Vq", "dp.st.Ddrf48naJQAIng92j7s7OKSrB7TxMImoZkq2RTbT0Vq")],
        keep: &[
            "dp.st.short",
        ],
    },
    Case {
        kind: "databricks_token",
        redact: &[("databricks dapib053b761208512320acab6ef8701e250", "dapib053b761208512320acab6ef8701e250")],
        keep: &[
            "dapi_version=2",
            "dapigateway",
        ],
    },
    Case {
        kind: "rubygems_key",
        redact: &[("gem rubygems_6ca68be62ba465e6d3e6c319bdb8a3fdb365d6f7f9428e4a", "rubygems_6ca68be62ba465e6d3e6c319bdb8a3fdb365d6f7f9428e4a")],
        keep: &[
            "rubygems_version=3",
        ],
    },
    Case {
        kind: "sentry_token",
        redact: &[("sentry sntrys_yXg_OIkkThPLjcM-MSuhibfAnb4mGe0uqUfZz4K4coVnl13uZvv9_CLkyywb", "sntrys_yXg_OIkkThPLjcM-MSuhibfAnb4mGe0uqUfZz4K4coVnl13uZvv9_CLkyywb")],
        keep: &[
            "sntrys_short",
        ],
    },
    Case {
        kind: "pulumi_token",
        redact: &[("pulumi pul-4b13867d9006d5076808c4ce307f829db8831533", "pul-4b13867d9006d5076808c4ce307f829db8831533")],
        keep: &[
            "pul-short",
        ],
    },
    Case {
        kind: "discord_webhook",
        redact: &[("https://discord.com/api/webhooks/1234567890123456789/CUPMViAotl7xEV9Eny8Z_ApWHXqHClS0H8i2raCjGmvJdXV2TGI4PR-RKO3MvHQsEQtp", "1234567890123456789/CUPMViAotl7xEV9Eny8Z_ApWHXqHClS0H8i2raCjGmvJdXV2TGI4PR-RKO3MvHQsEQtp")],
        keep: &[
            "https://discord.com/api/webhooks/ is the prefix",
        ],
    },
    Case {
        kind: "heroku_key",
        redact: &[("heroku HRKU-iuoT9djsp9pVlQ_pjtoJzggRCap18kvu9KVzoGkkgxf8RucEJ-FvBXxMOrpL", "HRKU-iuoT9djsp9pVlQ_pjtoJzggRCap18kvu9KVzoGkkgxf8RucEJ-FvBXxMOrpL")],
        keep: &[
            "HRKU-short",
        ],
    },
    Case {
        kind: "atlassian_token",
        redact: &[("jira ATATT3xaJ52LigWyYdgj38_4ey-ONPy_LBRUHH4AejvRCIP_Ph5RMk6hCqtK39qVRSoG80qf2GDWDQ7-bqMp7-FeYiCXJqMkOCw7ikHWLYs_180yrkog9qFE3G0zwI", "ATATT3xaJ52LigWyYdgj38_4ey-ONPy_LBRUHH4AejvRCIP_Ph5RMk6hCqtK39qVRSoG80qf2GDWDQ7-bqMp7-FeYiCXJqMkOCw7ikHWLYs_180yrkog9qFE3G0zwI")],
        keep: &[
            "ATATT3short",
        ],
    },
    Case {
        kind: "square_token",
        redact: &[("square sq0atp-QI2Ha8BFjlA-8x-mNoRmDf", "sq0atp-QI2Ha8BFjlA-8x-mNoRmDf")],
        keep: &[
            "sq0atp-short",
            "EAAA is a prefix",
        ],
    },
    Case {
        kind: "dockerhub_token",
        redact: &[("docker login -p dckr_pat_NaXxU1A_Hd0T4ygzyFemk-nQA9i", "dckr_pat_NaXxU1A_Hd0T4ygzyFemk-nQA9i")],
        keep: &[
            "dckr_pat_short",
        ],
    },
    Case {
        kind: "alibaba_access_key_id",
        redact: &[("aliyun LTAIvsclrQ8zfebyCH2yPLwl", "LTAIvsclrQ8zfebyCH2yPLwl")],
        keep: &[
            "LTAIshort",
            "LTAIABCDEFGHIJKLMNOPQRST",
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
