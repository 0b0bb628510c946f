//! The Luau sandbox: an allow-listed, frozen global environment, text-only chunks, a wall-clock budget per
//! snippet (interrupt) and a memory limit for the whole state. Knows nothing about rules or lints.

use super::flags::FlagValue;
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

/// What a snippet's globals are built from.
pub struct Globals<'a> {
    pub executable: &'a str,
    pub args: &'a [String],
    pub flags: &'a BTreeMap<String, FlagValue>,
    /// `None`: no snippet mentions `env`, so the table is not built (hot path).
    pub env: Option<&'a BTreeMap<String, String>>,
    pub user: &'a str,
    pub hostname: &'a str,
    pub cwd: &'a str,
    pub context: &'a BTreeMap<&'static str, String>,
}

/// A Lua state ready to run snippets for one invocation.
const FORMAT_NIL_AS_TEXT: &str = r##"
local fmt, sel, tostr, ty, unpack = string.format, select, tostring, type, table.unpack
string.format = function(f, ...)
  local n = sel("#", ...)
  local a = { ... }
  for i = 1, n do
    local v = a[i]
    if v == nil or ty(v) == "boolean" then a[i] = tostr(v) end
  end
  return fmt(f, unpack(a, 1, n))
end
"##;

pub struct Sandbox {
    lua: Lua,
    /// The frozen global table every snippet environment falls back to.
    base: Table,
    deadline: Rc<Cell<Option<Instant>>>,
    timed_out: Rc<Cell<bool>>,
    budget: Duration,
}

impl Sandbox {
    /// Builds the state: safe libraries only, allow-list applied, globals installed, then everything frozen
    /// by Luau's sandbox mode (read-only tables, including `args`, `flags` and `env`).
    pub fn new(memory_limit: usize, budget: Duration, g: &Globals) -> mlua::Result<Sandbox> {
        let libs = StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8 | StdLib::BIT | StdLib::OS;
        let lua = Lua::new_with(libs, LuaOptions::default())?;
        let globals = lua.globals();
        let os: Table = globals.raw_get::<Option<Table>>("os")?.unwrap_or(lua.create_table()?);
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
        let safe_os = lua.create_table()?;
        for name in OS_ALLOWED {
            safe_os.raw_set(name, os.raw_get::<Value>(name)?)?;
        }
        globals.raw_set("os", safe_os)?;
        install(&lua, &globals, g)?;
        // CoTerm's docs format possibly-nil values with %s (`k8s_context` without a kubeconfig); Luau raises
        // on that where Lua 5.2+ prints "nil". Format nil and booleans like Lua 5.4 so the docs' lint warns
        // instead of failing.
        lua.load(FORMAT_NIL_AS_TEXT).set_name("=ddcoterm").set_mode(ChunkMode::Text).exec()?;
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
        Ok(Sandbox { lua, base: globals, deadline, timed_out, budget })
    }

    /// Compiles a snippet as text (never bytecode) in a fresh environment of its own, so globals one snippet
    /// sets are not seen by the next. A single expression is compiled as `return <expr>`.
    pub fn compile(&self, name: &str, src: &str) -> Result<Function, String> {
        let env = self.lua.create_table().map_err(|e| e.to_string())?;
        let meta = self.lua.create_table().map_err(|e| e.to_string())?;
        meta.raw_set("__index", &self.base).map_err(|e| e.to_string())?;
        env.set_metatable(Some(meta)).map_err(|e| e.to_string())?;
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
                let msg = lua_message(&e);
                if matches!(e, mlua::Error::MemoryError(_)) || msg.contains("not enough memory") {
                    let _ = self.lua.gc_collect();
                    return Err("exceeded the policy memory limit (policy.memory_limit)".into());
                }
                Err(msg)
            }
        }
    }
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
    globals.raw_set("user", g.user)?;
    globals.raw_set("hostname", g.hostname)?;
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
