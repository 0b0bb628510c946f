//! The Luau sandbox: an allow-listed, frozen global environment, text-only chunks, a wall-clock budget per
//! snippet (interrupt) and a memory limit for the whole state. Knows nothing about rules or lints.

use super::flags::FlagValue;
use crate::config::org_cache::OrgCache;
use mlua::{ChunkMode, Function, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Globals a snippet may see besides the context variables. Everything else the standard libraries define
/// (`loadstring`, `getfenv`, `setfenv`, `collectgarbage`, `require`, `newproxy`, `print`, `coroutine`,
/// `buffer`, `debug`, the full `os`...) is removed before the environment is frozen.
const ALLOWED: [&str; 26] = [
    "_G",
    "_VERSION",
    "assert",
    "error",
    "ipairs",
    "next",
    "pairs",
    "pcall",
    "rawequal",
    "rawget",
    "rawlen",
    "rawset",
    "select",
    "setmetatable",
    "getmetatable",
    "tonumber",
    "tostring",
    "type",
    "typeof",
    "unpack",
    "xpcall",
    "string",
    "table",
    "math",
    "utf8",
    "bit32",
];

/// `os` functions that only read the clock.
const OS_ALLOWED: [&str; 4] = ["clock", "date", "difftime", "time"];

/// The standard libraries a state opens besides `string` (always open: its functions are also the methods
/// of every string value). Each one only when some snippet writes its name: registering a library's functions
/// is a large part of building a state, on every shim call. A snippet that reaches one without writing its
/// name (`_G["ma" .. "th"]`) sees `nil`, as for `env` and `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Libraries(StdLib);

impl Libraries {
    /// Every allowed library (tests, and callers that cannot tell which snippets will run).
    pub fn all() -> Libraries {
        Libraries(StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::BIT | StdLib::OS)
    }

    /// The libraries the snippets `sources` name.
    pub fn named_in(sources: &[&str]) -> Libraries {
        let mut libs = StdLib::STRING;
        for (name, lib) in [
            ("table", StdLib::TABLE),
            ("math", StdLib::MATH),
            ("utf8", StdLib::UTF8),
            ("bit32", StdLib::BIT),
            ("os", StdLib::OS),
        ] {
            if sources.iter().any(|s| s.contains(name)) {
                libs |= lib;
            }
        }
        Libraries(libs)
    }
}

/// What a snippet's globals are built from.
pub struct Globals<'a> {
    pub libraries: Libraries,
    pub executable: &'a str,
    pub args: &'a [String],
    pub flags: &'a BTreeMap<String, FlagValue>,
    /// `None`: no snippet mentions `env`, so the table is not built (hot path).
    pub env: Option<&'a BTreeMap<String, String>>,
    /// `None`: no snippet mentions it (the user name costs an NSS lookup).
    pub user: Option<&'a str>,
    pub hostname: Option<&'a str>,
    pub cwd: &'a str,
    pub context: &'a BTreeMap<&'static str, String>,
}

/// Name of the chunk that holds a batch of snippets; runtime errors inside it are renamed to the snippet.
const BATCH_CHUNK: &str = "ddcoterm-policy-batch";

/// Where each snippet of a compiled batch starts: (line of its `function()`, snippet name, line offset).
type BatchMap = Vec<(usize, String, usize)>;

/// A Lua state ready to run snippets for one invocation.
pub struct Sandbox {
    lua: Lua,
    batch: std::cell::RefCell<BatchMap>,
    /// `{ __index = <the frozen globals> }`, shared by every snippet environment.
    env_meta: Table,
    deadline: Rc<Cell<Option<Instant>>>,
    timed_out: Rc<Cell<bool>>,
    budget: Duration,
}

impl Sandbox {
    /// Builds the state: safe libraries only, allow-list applied, globals installed, then everything frozen
    /// by Luau's sandbox mode (read-only tables, including `args`, `flags` and `env`).
    pub fn new(memory_limit: usize, budget: Duration, g: &Globals) -> mlua::Result<Sandbox> {
        let lua = Lua::new_with(g.libraries.0, LuaOptions::default())?;
        let globals = lua.globals();
        let os: Option<Table> = globals.raw_get("os")?;
        let mut remove = Vec::new();
        for pair in globals.pairs::<Value, Value>() {
            let (k, _) = pair?;
            let keep = matches!(&k, Value::String(s) if s.to_str().is_ok_and(|s| ALLOWED.contains(&&*s)));
            if !keep {
                remove.push(k);
            }
        }
        for k in remove {
            globals.raw_set(k, Value::Nil)?;
        }
        if let Some(os) = os {
            let safe_os = lua.create_table()?;
            for name in OS_ALLOWED {
                safe_os.raw_set(name, os.raw_get::<Value>(name)?)?;
            }
            globals.raw_set("os", safe_os)?;
        }
        install(&lua, &globals, g)?;
        format_nil_as_text(&lua, &globals)?;
        lua.set_compiler(super::code_cache::compiler());
        lua.set_memory_limit(memory_limit)?;
        lua.sandbox(true)?;

        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let timed_out = Rc::new(Cell::new(false));
        let (d, t) = (deadline.clone(), timed_out.clone());
        lua.set_interrupt(move |_| match d.get() {
            Some(at) if Instant::now() >= at => {
                t.set(true);
                Err(mlua::Error::runtime("exceeded its time budget"))
            }
            _ => Ok(VmState::Continue),
        });
        let env_meta = lua.create_table()?;
        env_meta.raw_set("__index", &globals)?;
        Ok(Sandbox { lua, batch: Default::default(), env_meta, deadline, timed_out, budget })
    }

    /// Compiles a snippet as text (never bytecode) in a fresh environment of its own, so globals one snippet
    /// sets are not seen by the next. A single expression is compiled as `return <expr>`.
    pub fn compile(&self, name: &str, src: &str) -> Result<Function, String> {
        let env = self.fresh_env().map_err(|e| e.to_string())?;
        let load = |text: &str| {
            self.lua
                .load(text)
                .set_name(format!("={name}"))
                .set_mode(ChunkMode::Text)
                .set_environment(env.clone())
                .into_function()
        };
        load(&format!("return {src}")).or_else(|_| load(src)).map_err(|e| lua_message(&e))
    }

    /// Compiles many snippets at once. Every Luau compilation has a large fixed cost, so the snippets are
    /// compiled as one chunk of closures, each then given an environment of its own. The batch is used only
    /// when it lines up exactly with the snippets (each closure defined on the line written for it);
    /// otherwise, and for any snippet that does not compile, each snippet is compiled on its own, which is
    /// also what names the failing snippet in the error.
    pub fn compile_all(&self, items: &[(String, &str)]) -> Vec<Result<Function, String>> {
        self.compile_all_cached(items, None)
    }

    /// [`compile_all`](Self::compile_all), the batch's bytecode taken from (or stored in) the organisation's
    /// cache. The caller passes a cache only when every snippet is the organisation's
    /// ([`super::code_cache`]).
    pub fn compile_all_cached(
        &self,
        items: &[(String, &str)],
        cache: Option<&OrgCache>,
    ) -> Vec<Result<Function, String>> {
        if items.len() > 1 {
            if let Some(fs) = self.compile_batch(items, cache) {
                return fs.into_iter().map(Ok).collect();
            }
        }
        items.iter().map(|(n, s)| self.compile(n, s)).collect()
    }

    fn compile_batch(&self, items: &[(String, &str)], cache: Option<&OrgCache>) -> Option<Vec<Function>> {
        let mut src = String::from("return {\n");
        let mut map: BatchMap = Vec::with_capacity(items.len());
        let mut line = 2;
        for (name, s) in items {
            if s.as_bytes().first().is_some_and(|b| *b < b'\t') {
                return None;
            }
            let (body, offset) = if starts_with_statement(s) {
                (format!("function()\n{s}\nend,\n"), 1)
            } else {
                (format!("function() return {s}\nend,\n"), 0)
            };
            map.push((line, name.clone(), offset));
            line += body.bytes().filter(|b| *b == b'\n').count();
            src.push_str(&body);
        }
        src.push('}');
        // Building the table runs no snippet code unless a snippet's text escapes its closure: keep that
        // under the same time budget as a snippet, in a throwaway environment.
        // The budget starts after compiling, which runs no snippet code and, on a loaded machine, must not
        // eat into it (the batch would then fail and every snippet be compiled again, one by one).
        let chunk = match cache.and_then(|c| self.load_cached(c, &src)) {
            Some(chunk) => chunk,
            None => self
                .lua
                .load(&src)
                .set_name(format!("={BATCH_CHUNK}"))
                .set_mode(ChunkMode::Text)
                .set_environment(self.fresh_env().ok()?)
                .into_function()
                .ok()?,
        };
        self.deadline.set(Some(Instant::now() + self.budget));
        let table: Option<Table> = chunk.call(()).ok();
        self.deadline.set(None);
        let table = table?;
        if table.raw_len() != items.len() {
            return None;
        }
        // Snippets must not see each other's globals. One that cannot define a function cannot assign any
        // (an expression has no assignment statement; `_G` is the frozen base, `getfenv` is gone), so those
        // share one environment, made after the batch ran so that no escaped text can have touched it.
        let shared = self.fresh_env().ok()?;
        let mut out = Vec::with_capacity(items.len());
        for (i, ((start, _, offset), (_, text))) in map.iter().zip(items).enumerate() {
            let f: Function = table.raw_get(i + 1).ok()?;
            if f.info().line_defined != Some(*start) {
                return None;
            }
            let env = if *offset == 0 && !text.contains("function") {
                shared.clone()
            } else {
                self.fresh_env().ok()?
            };
            f.set_environment(env).ok()?;
            out.push(f);
        }
        *self.batch.borrow_mut() = map;
        Some(out)
    }

    /// The batch chunk from the organisation's cached bytecode; `None` (compile from text) when there is none
    /// or it does not load.
    fn load_cached(&self, cache: &OrgCache, src: &str) -> Option<Function> {
        // `get`, not `raw_get`: in sandbox mode the globals are a proxy over the frozen table.
        let luau: String = self.lua.globals().get("_VERSION").ok()?;
        let code = super::code_cache::bytecode(cache, &luau, src)?;
        self.lua
            .load(&code[..])
            .set_name(format!("={BATCH_CHUNK}"))
            .set_mode(ChunkMode::Binary)
            .set_environment(self.fresh_env().ok()?)
            .into_function()
            .ok()
    }

    /// An empty environment that falls back to the frozen globals.
    fn fresh_env(&self) -> mlua::Result<Table> {
        let env = self.lua.create_table()?;
        env.set_metatable(Some(self.env_meta.clone()))?;
        Ok(env)
    }

    /// `ddcoterm-policy-batch:LINE: msg` -> `<snippet name>:<line in the snippet>: msg`.
    fn rename_batch_error(&self, msg: String) -> String {
        let Some(rest) = msg.strip_prefix(BATCH_CHUNK).and_then(|r| r.strip_prefix(':')) else { return msg };
        let Some((n, tail)) = rest.split_once(':') else { return msg };
        let Ok(n) = n.parse::<usize>() else { return msg };
        match self.batch.borrow().iter().rev().find(|(start, _, _)| *start <= n) {
            Some((start, name, offset)) => format!("{name}:{}:{tail}", n - start + 1 - offset),
            None => msg,
        }
    }

    /// Runs a compiled snippet within the budget; its return values, or the error message.
    pub fn run(&self, f: &Function) -> Result<MultiValue, String> {
        self.timed_out.set(false);
        self.deadline.set(Some(Instant::now() + self.budget));
        let r = f.call::<MultiValue>(());
        self.deadline.set(None);
        let over = self.timed_out.get();
        match r {
            // A snippet that swallowed the interrupt with pcall still ran over its budget.
            _ if over => {
                Err(format!("exceeded its time budget of {}", humantime::format_duration(self.budget)))
            }
            Ok(v) => Ok(v),
            Err(e) => {
                let msg = self.rename_batch_error(lua_message(&e));
                if matches!(e, mlua::Error::MemoryError(_)) || msg.contains("not enough memory") {
                    let _ = self.lua.gc_collect();
                    return Err("exceeded the policy memory limit (policy.memory_limit)".into());
                }
                Err(msg)
            }
        }
    }
}

/// True when a snippet starts with a statement keyword (after blank and comment lines), so it is compiled as
/// a block rather than as `return <expr>`. A wrong guess only costs the batch, never correctness: a block
/// taken for an expression does not compile, and the snippets are then compiled one by one.
fn starts_with_statement(src: &str) -> bool {
    let first =
        src.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("--")).unwrap_or_default();
    let word: String = first.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    matches!(
        word.as_str(),
        "local"
            | "if"
            | "for"
            | "while"
            | "repeat"
            | "do"
            | "function"
            | "return"
            | "goto"
            | "break"
            | "continue"
    )
}

/// CoTerm's docs format possibly-nil values with %s (`k8s_context` without a kubeconfig); Luau raises on that
/// where Lua 5.2+ prints "nil". `string.format` therefore turns nil and boolean arguments into text first, like
/// Lua 5.4, so the docs' lint warns instead of failing. Native, so that no chunk is compiled per call.
fn format_nil_as_text(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let string: Table = globals.raw_get("string")?;
    let format: Function = string.raw_get("format")?;
    let wrapper = lua.create_function(move |lua, args: MultiValue| {
        let mut args = args;
        for v in args.iter_mut().skip(1) {
            match v {
                Value::Nil => *v = Value::String(lua.create_string("nil")?),
                Value::Boolean(b) => {
                    *v = Value::String(lua.create_string(if *b { "true" } else { "false" })?)
                }
                _ => {}
            }
        }
        format.call::<MultiValue>(args)
    })?;
    string.raw_set("format", wrapper)
}

/// Installs `executable`, `args`, `flags`, `has_arg`, `env`, `user`, `hostname`, `cwd` and the context.
fn install(lua: &Lua, globals: &Table, g: &Globals) -> mlua::Result<()> {
    globals.raw_set("executable", g.executable)?;
    let args = lua.create_sequence_from(g.args.iter().map(String::as_str))?;
    globals.raw_set("args", args)?;
    let flags = lua.create_table_with_capacity(0, g.flags.len())?;
    for (k, v) in g.flags {
        match v {
            FlagValue::Bool(b) => flags.raw_set(k.as_str(), *b)?,
            FlagValue::Str(s) => flags.raw_set(k.as_str(), s.as_str())?,
        }
    }
    globals.raw_set("flags", flags)?;
    let owned: Vec<String> = g.args.to_vec();
    let has_arg = lua.create_function(move |_, s: mlua::String| {
        let s = s.as_bytes();
        Ok(owned.iter().any(|a| a.as_bytes() == &*s))
    })?;
    globals.raw_set("has_arg", has_arg)?;
    if let Some(env) = g.env {
        let t = lua.create_table_with_capacity(0, env.len())?;
        for (k, v) in env {
            t.raw_set(k.as_str(), v.as_str())?;
        }
        globals.raw_set("env", t)?;
    }
    if let Some(user) = g.user {
        globals.raw_set("user", user)?;
    }
    if let Some(hostname) = g.hostname {
        globals.raw_set("hostname", hostname)?;
    }
    globals.raw_set("cwd", g.cwd)?;
    for (k, v) in g.context {
        globals.raw_set(*k, v.as_str())?;
    }
    Ok(())
}

/// The Lua message without mlua's traceback noise.
pub fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => {
            m.lines().next().unwrap_or_default().to_string()
        }
        mlua::Error::MemoryError(_) => "not enough memory".into(),
        other => other.to_string().lines().next().unwrap_or_default().to_string(),
    }
}

/// Compiles `src` without any Lua state, for `validate_all`: `return <src>` first, then the source as is.
pub fn check_compiles(name: &str, src: &str) -> Result<(), String> {
    let c = mlua::Compiler::new();
    if c.compile(format!("return {src}")).is_ok() {
        return Ok(());
    }
    if src.as_bytes().first().is_some_and(|b| *b < b'\t') {
        return Err("attempt to load a binary chunk: snippets are Lua source text only".into());
    }
    c.compile(src).map(|_| ()).map_err(|e| {
        // The compiler reports `:LINE: message` with no chunk name; put the snippet's name in front.
        let m = lua_message(&e);
        format!("{name}:{}", m.trim_start_matches(':'))
    })
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    fn sandbox() -> Sandbox {
        let (args, flags, ctx) = (vec!["scale".to_string()], BTreeMap::new(), BTreeMap::new());
        let g = Globals {
            libraries: Libraries::all(),
            executable: "kubectl",
            args: &args,
            flags: &flags,
            env: None,
            user: Some("u"),
            hostname: Some("h"),
            cwd: "/",
            context: &ctx,
        };
        Sandbox::new(16 << 20, Duration::from_millis(200), &g).unwrap()
    }

    fn first(sb: &Sandbox, f: &Function) -> Value {
        sb.run(f).unwrap().into_iter().next().unwrap_or(Value::Nil)
    }

    #[test]
    fn batch_matches_one_by_one_semantics_and_isolates_globals() {
        let sb = sandbox();
        let items: Vec<(String, &str)> = vec![
            ("r0".into(), "has_arg('scale')"),
            ("r1".into(), "-- a comment first\nlocal x = 1\nleak = 5\nreturn x == 1"),
            ("r2".into(), "leak == nil"),
            ("r3".into(), "if has_arg('nope') then return 'w' end"),
        ];
        let fs: Vec<Function> = sb.compile_all(&items).into_iter().map(|f| f.unwrap()).collect();
        assert!(!sb.batch.borrow().is_empty(), "compiled as one batch");
        assert_eq!(first(&sb, &fs[0]), Value::Boolean(true));
        assert_eq!(first(&sb, &fs[1]), Value::Boolean(true));
        assert_eq!(
            first(&sb, &fs[2]),
            Value::Boolean(true),
            "globals set by one snippet are not seen by the next"
        );
        assert_eq!(first(&sb, &fs[3]), Value::Nil);
    }

    #[test]
    fn runtime_errors_in_a_batch_name_the_snippet_and_its_line() {
        let sb = sandbox();
        let items: Vec<(String, &str)> = vec![
            ("kubectl rules[0]".into(), "true"),
            ("kubectl rules[1]".into(), "local a = 1\nreturn nil + a"),
        ];
        let fs: Vec<Function> = sb.compile_all(&items).into_iter().map(|f| f.unwrap()).collect();
        let e = sb.run(&fs[1]).unwrap_err();
        assert!(e.starts_with("kubectl rules[1]:2:"), "{e}");
    }

    #[test]
    fn a_snippet_escaping_its_closure_falls_back_and_fails_to_compile() {
        let sb = sandbox();
        let items: Vec<(String, &str)> = vec![
            ("org".into(), "has_arg('scale')"),
            ("user".into(), "false end, function() return false"),
            ("org2".into(), "true"),
        ];
        let fs = sb.compile_all(&items);
        assert!(sb.batch.borrow().is_empty(), "misaligned batch is not used");
        assert!(fs[0].is_ok() && fs[2].is_ok());
        assert!(fs[1].is_err(), "the escaping snippet does not compile on its own");
    }

    #[test]
    fn an_expression_that_defines_a_function_cannot_shadow_globals_for_the_next() {
        let sb = sandbox();
        let items: Vec<(String, &str)> = vec![
            ("user lint".into(), "(function() has_arg = function() return false end end)() or nil"),
            ("org rule".into(), "has_arg('scale')"),
        ];
        let fs: Vec<Function> = sb.compile_all(&items).into_iter().map(|f| f.unwrap()).collect();
        assert!(!sb.batch.borrow().is_empty(), "compiled as one batch");
        assert_eq!(first(&sb, &fs[0]), Value::Nil);
        assert_eq!(first(&sb, &fs[1]), Value::Boolean(true), "has_arg is still the real one");
    }

    #[test]
    fn text_run_while_the_batch_is_built_cannot_touch_the_shared_environment() {
        let sb = sandbox();
        // Keeps the closure count and the line aligned, so the batch is used.
        let evil = "false end and (function() has_arg = function() return false end end)() or function() return false";
        let items: Vec<(String, &str)> = vec![
            ("user".into(), evil),
            ("org".into(), "has_arg('scale')"),
            ("org2".into(), "has_arg('x') == false"),
        ];
        let fs = sb.compile_all(&items);
        assert!(!sb.batch.borrow().is_empty(), "the batch was used");
        let org = fs[1].as_ref().expect("org rule compiles");
        assert_eq!(first(&sb, org), Value::Boolean(true), "has_arg is still the real one");
        assert_eq!(first(&sb, fs[2].as_ref().unwrap()), Value::Boolean(true));
    }

    #[test]
    fn string_format_prints_nil_and_booleans_and_still_checks_its_format() {
        let sb = sandbox();
        let f = sb.compile("f", "string.format('%s/%s/%s/%d', nil, true, 'x', 3)").unwrap();
        assert_eq!(first(&sb, &f), Value::String(sb.lua.create_string("nil/true/x/3").unwrap()));
        let m = sb.compile("m", "('%s!'):format(false)").unwrap();
        assert_eq!(first(&sb, &m), Value::String(sb.lua.create_string("false!").unwrap()));
        let bad = sb.compile("bad", "string.format('%d', 'x')").unwrap();
        assert!(sb.run(&bad).is_err());
    }

    #[test]
    fn a_snippet_that_does_not_compile_is_named() {
        let sb = sandbox();
        let items: Vec<(String, &str)> = vec![("a".into(), "true"), ("kubectl lints[1]".into(), "has_arg(")];
        let fs = sb.compile_all(&items);
        assert!(fs[0].is_ok());
        assert!(fs[1].as_ref().unwrap_err().contains("kubectl lints[1]"), "{:?}", fs[1].as_ref().err());
    }
}
