//! Splits a command line into words only when a POSIX shell would do nothing to it but split and unquote:
//! no expansion, substitution, redirection, operator, glob or assignment. Only such a line can be run without
//! the shell (a transfer server exec'd directly) and still run exactly what `$SHELL -c LINE` would have run;
//! any other line is left to the shell.

/// Characters that stand for themselves outside quotes. Everything else ASCII (`;&|<>()$\`*?[]{}#!` and
/// friends) may mean something to the shell, so a line using one unquoted is not plain.
fn literal(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:,@+%=^~".contains(c) || !c.is_ascii()
}

/// The words of `line` when it is plain (see the module doc); `None` when the shell would do more than
/// unquote it, including when a quote is left open.
pub fn plain_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has started (possibly empty, as `''` is).
    let mut started = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\'' => {
                started = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' | '`' => return None,
                        '\\' => match chars.next()? {
                            '\n' => return None,
                            c @ ('$' | '`' | '"' | '\\') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => match chars.next()? {
                '\n' => return None,
                c => {
                    started = true;
                    word.push(c);
                }
            },
            // `~` expands at the start of a word; `=` in the first word may be an assignment (`A=b cmd`).
            '~' if !started => return None,
            '=' if words.is_empty() => return None,
            c if literal(c) => {
                started = true;
                word.push(c);
            }
            _ => return None,
        }
    }
    if started {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_split_and_unquote_like_sh() {
        let cases: [(&str, &[&str]); 12] = [
            ("scp -t /tmp", &["scp", "-t", "/tmp"]),
            ("  scp\t-f  'a b'  ", &["scp", "-f", "a b"]),
            ("git-upload-pack '/srv/git/repo.git'", &["git-upload-pack", "/srv/git/repo.git"]),
            ("git-receive-pack 'it'\\''s.git'", &["git-receive-pack", "it's.git"]),
            (r#"echo "a \"b\" \$ \\ \x""#, &["echo", r#"a "b" $ \ \x"#]),
            ("printf '' x", &["printf", "", "x"]),
            ("a\\ b c", &["a b", "c"]),
            (
                "rsync --server -vlogDtpre.iLsfxCIvu . dir/",
                &["rsync", "--server", "-vlogDtpre.iLsfxCIvu", ".", "dir/"],
            ),
            ("kubectl --context=prod get pods", &["kubectl", "--context=prod", "get", "pods"]),
            ("cat a~b 'x'y\"z\"", &["cat", "a~b", "xyz"]),
            ("", &[]),
            ("échec --ça", &["échec", "--ça"]),
        ];
        for (line, want) in cases {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            assert_eq!(plain_words(line), Some(want), "{line:?}");
        }
    }

    #[test]
    fn anything_the_shell_would_interpret_is_not_plain() {
        for line in [
            "scp -t /tmp; rm -rf /",
            "scp -t /tmp && id",
            "scp -t /tmp | tee x",
            "scp -t /tmp > out",
            "scp -t $HOME",
            "scp -t \"$HOME\"",
            "scp -t `id`",
            "scp -t \"`id`\"",
            "scp -t $(id)",
            "scp -t *.txt",
            "scp -t file?",
            "scp -t [ab]",
            "scp -t {a,b}",
            "scp -t ~/x",
            "scp -t ~",
            "FOO=bar scp -t /tmp",
            "scp -t /tmp # comment",
            "! scp -t x",
            "(scp -t x)",
            "scp -t x\nid",
            "scp -t x &",
            "scp -t 'open",
            "scp -t \"open",
            "scp -t x\\",
            "scp -t x\\\nid",
        ] {
            assert_eq!(plain_words(line), None, "{line:?} must be left to the shell");
        }
    }
}
