//! Shell integration: generated rc files (in a private temp dir) that source the user's own files unchanged,
//! then print the command start/end markers `markers.rs` parses. bash and zsh; other shells run plain.

use std::ffi::OsString;
use std::path::Path;

/// How to start the shell so that it reports each typed command.
#[derive(Debug, Default)]
pub struct Integration {
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

/// Which integration a shell path gets, by its basename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bash,
    Zsh,
    Other,
}

pub fn kind(shell: &Path) -> Kind {
    match shell.file_name().and_then(|n| n.to_str()).unwrap_or_default() {
        "bash" => Kind::Bash,
        "zsh" => Kind::Zsh,
        _ => Kind::Other,
    }
}

/// bash: a login shell ignores `--rcfile`, so the rc file does what login would (`/etc/profile`, then the
/// first of `~/.bash_profile`, `~/.bash_login`, `~/.profile`), then adds the markers: PS0 prints the command
/// (from history) as it starts, PROMPT_COMMAND prints its status before the next prompt.
pub const BASH_RC: &str = r#"# ddcoterm shell integration (generated; your own files are sourced unchanged)
if [ -r /etc/profile ]; then . /etc/profile; fi
if [ -r "$HOME/.bash_profile" ]; then . "$HOME/.bash_profile"
elif [ -r "$HOME/.bash_login" ]; then . "$HOME/.bash_login"
elif [ -r "$HOME/.profile" ]; then . "$HOME/.profile"
fi
__ddcoterm_cmd() {
  local c d
  c=$(HISTTIMEFORMAT= builtin history 1)
  c="${c#"${c%%[![:space:]]*}"}"; c="${c#*[[:space:]]}"; c="${c#"${c%%[![:space:]]*}"}"
  c="${c//[$'\a\e\x1f']/}"; d="${PWD//[$'\a\e\x1f']/}"
  builtin printf '\e]133;C;ddcoterm;%s\x1f%s\a' "$d" "$c"
}
__ddcoterm_prompt() {
  local s=$?
  # stderr, like PS0 (which carries the start marker): on pipes the two markers must share one stream, or
  # a command's end can be read after the next one's start.
  builtin printf '\e]133;D;%s;ddcoterm\a' "$s" >&2
  return $s
}
PS0="${PS0}"'$(__ddcoterm_cmd)'
if [[ "$(declare -p PROMPT_COMMAND 2>/dev/null)" == "declare -a"* ]]; then
  PROMPT_COMMAND=(__ddcoterm_prompt "${PROMPT_COMMAND[@]}")
else
  PROMPT_COMMAND="__ddcoterm_prompt${PROMPT_COMMAND:+; $PROMPT_COMMAND}"
fi
"#;

/// zsh: ZDOTDIR points here; each file restores the user's ZDOTDIR, sources the user's file, and points
/// back here for the next one. `.zshrc` leaves the user's ZDOTDIR in place (so zsh reads the user's
/// `.zlogin` itself) and adds preexec/precmd hooks.
const ZSHENV: &str = r#"# ddcoterm shell integration (generated)
__ddcoterm_dir=$ZDOTDIR
ZDOTDIR=${DDCOTERM_USER_ZDOTDIR:-$HOME}
[[ -r $ZDOTDIR/.zshenv ]] && builtin source $ZDOTDIR/.zshenv
__ddcoterm_user_zdotdir=$ZDOTDIR
ZDOTDIR=$__ddcoterm_dir
"#;
const ZPROFILE: &str = r#"# ddcoterm shell integration (generated)
ZDOTDIR=$__ddcoterm_user_zdotdir
[[ -r $ZDOTDIR/.zprofile ]] && builtin source $ZDOTDIR/.zprofile
__ddcoterm_user_zdotdir=$ZDOTDIR
ZDOTDIR=$__ddcoterm_dir
"#;
const ZSHRC: &str = r#"# ddcoterm shell integration (generated)
ZDOTDIR=$__ddcoterm_user_zdotdir
[[ -r $ZDOTDIR/.zshrc ]] && builtin source $ZDOTDIR/.zshrc
unset DDCOTERM_USER_ZDOTDIR __ddcoterm_dir __ddcoterm_user_zdotdir
__ddcoterm_preexec() {
  builtin print -rn -- $'\e]133;C;ddcoterm;'"${PWD//[$'\a\e\x1f']/}"$'\x1f'"${1//[$'\a\e\x1f']/}"$'\a'
}
__ddcoterm_precmd() {
  local s=$?
  builtin print -rn -- $'\e]133;D;'"$s"$';ddcoterm\a'
  return $s
}
typeset -ga preexec_functions precmd_functions
preexec_functions+=(__ddcoterm_preexec)
precmd_functions=(__ddcoterm_precmd $precmd_functions)
"#;

/// Writes the rc files for `shell` into `dir` (a private temp dir that must outlive the shell's start-up)
/// and returns the arguments and environment to start it with. Other shells get `-l` and no markers.
pub fn integrate(shell: &Path, dir: &Path) -> anyhow::Result<Integration> {
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    };
    match kind(shell) {
        Kind::Bash => {
            write("bashrc", BASH_RC)?;
            Ok(Integration {
                args: vec!["--rcfile".into(), dir.join("bashrc").into(), "-i".into()],
                env: Vec::new(),
            })
        }
        Kind::Zsh => {
            write(".zshenv", ZSHENV)?;
            write(".zprofile", ZPROFILE)?;
            write(".zshrc", ZSHRC)?;
            let user = std::env::var_os("ZDOTDIR").unwrap_or_else(|| crate::dirs::user_home().into());
            Ok(Integration {
                args: vec!["-l".into()],
                env: vec![("ZDOTDIR".into(), dir.into()), ("DDCOTERM_USER_ZDOTDIR".into(), user)],
            })
        }
        Kind::Other => Ok(Integration { args: vec!["-l".into()], env: Vec::new() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_basename() {
        assert_eq!(kind(Path::new("/usr/bin/bash")), Kind::Bash);
        assert_eq!(kind(Path::new("/bin/zsh")), Kind::Zsh);
        assert_eq!(kind(Path::new("/bin/fish")), Kind::Other);
    }

    #[test]
    fn bash_gets_an_rcfile_and_never_touches_home() {
        let d = tempfile::tempdir().unwrap();
        let i = integrate(Path::new("/bin/bash"), d.path()).unwrap();
        assert_eq!(i.args[0], "--rcfile");
        let rc = std::fs::read_to_string(d.path().join("bashrc")).unwrap();
        assert!(rc.contains(". \"$HOME/.bash_profile\"") && rc.contains("133;C;ddcoterm"));
    }
}
