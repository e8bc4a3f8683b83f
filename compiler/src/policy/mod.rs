//! The policy host: runs WebAssembly policy modules, sandboxed, for `select`
//! and for `keelson policy`.
//!
//! A policy is a core module with one import (`keelson.log`) and no WASI, so
//! it is a pure function of its JSON input (ABI v1, book/src/policy-abi.md).
//! Every call gets a fresh instance under fuel, memory, deadline, output and
//! log limits; a broken or hostile module is an error, never a hang or a
//! crash. Compiled modules are cached on disk by the blake3 of their bytes.

pub mod abi;
pub mod load;
pub mod stdlib;
pub mod tool;

pub use load::{Policies, label};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, InstancePre, Linker, Memory, ResourceLimiter,
    Store, Trap, ValType,
};

/// What one call may use. Going over any limit stops the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units (about one per WebAssembly instruction).
    pub fuel: u64,
    /// Bytes of linear memory.
    pub memory: usize,
    /// Wall-clock time, a backstop for fuel.
    pub deadline: Duration,
    /// Bytes of output read.
    pub output: usize,
    /// Bytes of log kept per call.
    pub log: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 500_000_000,
            memory: 64 << 20,
            deadline: Duration::from_secs(10),
            output: 1 << 20,
            log: 64 << 10,
        }
    }
}

/// How often the deadline clock ticks.
const TICK: Duration = Duration::from_millis(10);

/// The engine and its deadline clock. Cheap to share across threads.
pub struct Host {
    engine: Engine,
    /// The one import a policy may use.
    linker: Linker<State>,
    limits: Limits,
    cache: Option<PathBuf>,
    stop: Arc<AtomicBool>,
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A module that passed every load-time check, its imports resolved once.
#[derive(Clone)]
pub struct Module {
    /// How the estate names it (`stdlib:soak-time`, `policies/x.wasm`).
    pub label: String,
    /// blake3 of its bytes, 64 lowercase hex digits.
    pub hash: String,
    pub exports_filter: bool,
    pub exports_promote: bool,
    pre: InstancePre<State>,
}

/// The answer of one call, with what the module logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Called<T> {
    pub output: T,
    pub log: Vec<String>,
    /// Fuel the call used (instantiation included).
    pub fuel: u64,
}

/// Why a call failed: `message` says what happened; `log` is what the module
/// logged before (a panic message from the SDK arrives this way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub message: String,
    pub log: Vec<String>,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(last) = self.log.last() {
            write!(f, " (its last log line: {last})")?;
        }
        Ok(())
    }
}

/// Per-call state: the limiter and the log.
struct State {
    memory_limit: usize,
    memory_hit: bool,
    log: Vec<String>,
    log_bytes: usize,
    log_limit: usize,
    log_dropped: bool,
}

impl ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_hit = true;
            return Err(wasmtime::format_err!("memory limit"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Policies need a table for indirect calls, never a huge one.
        Ok(desired <= 100_000)
    }
}

impl Host {
    /// A host with `limits`, caching compiled modules in `cache_dir`
    /// (`None`: compile every time).
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Host, String> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            // The same answer on every machine, whatever its CPU.
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .max_wasm_stack(1 << 20);
        let engine =
            Engine::new(&config).map_err(|e| format!("cannot start the policy engine: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("keelson-policy-clock".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| format!("cannot start the policy deadline clock: {e}"))?;
        }
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap(
                "keelson",
                "log",
                |mut caller: Caller<'_, State>, ptr: i32, len: i32| {
                    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                        return;
                    };
                    log(
                        &mut caller,
                        memory,
                        ptr as u32 as usize,
                        len as u32 as usize,
                    );
                },
            )
            .map_err(|e| format!("cannot define the policy import `keelson.log`: {e}"))?;
        Ok(Host {
            engine,
            linker,
            limits,
            cache: cache_dir.map(|d| d.join(format!("policy-v1-wasmtime{}", wasmtime_major()))),
            stop,
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles and checks a module: its imports, its exports and its ABI
    /// version. `bytes` may also be WebAssembly text.
    pub fn load(&self, label: &str, bytes: &[u8]) -> Result<Module, String> {
        let hash = crate::lock::hash(bytes);
        if label.ends_with(".wasm") && !bytes.starts_with(b"\0asm") {
            return Err(
                "it is not a WebAssembly module (a `.wasm` file starts with the bytes `\\0asm`)"
                    .into(),
            );
        }
        let module = self.compile(&hash, bytes)?;
        for import in module.imports() {
            let ok = import.module() == "keelson"
                && import.name() == "log"
                && matches!(import.ty(), ExternType::Func(f)
                    if same(f.params(), &[ValType::I32, ValType::I32]) && same(f.results(), &[]));
            if !ok {
                return Err(format!(
                    "it imports `{}.{}`, but a policy may import only the function `keelson.log(i32, i32)`: no WASI, clock, files or network, so that a policy is a pure function",
                    import.module(),
                    import.name()
                ));
            }
        }
        let func = |name: &str, params: &[ValType], results: &[ValType]| -> Result<bool, String> {
            match module.get_export(name) {
                None => Ok(false),
                Some(ExternType::Func(f))
                    if same(f.params(), params) && same(f.results(), results) =>
                {
                    Ok(true)
                }
                Some(other) => Err(format!(
                    "its export `{name}` is {}, not the function the ABI names ({})",
                    describe(&other),
                    signature(params, results)
                )),
            }
        };
        if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
            return Err("it does not export its `memory`".into());
        }
        for (name, params, results) in [
            ("keelson_abi_version", &[][..], &[ValType::I32][..]),
            ("keelson_alloc", &[ValType::I32][..], &[ValType::I32][..]),
        ] {
            if !func(name, params, results)? {
                return Err(format!(
                    "it does not export `{name}` {}: is it a keelson policy?",
                    signature(params, results)
                ));
            }
        }
        let entry = [ValType::I32, ValType::I32];
        let exports_filter = func("filter", &entry, &[ValType::I64])?;
        let exports_promote = func("promote", &entry, &[ValType::I64])?;
        if !exports_filter && !exports_promote {
            return Err("it exports neither `filter` nor `promote`".into());
        }
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| format!("its imports cannot be resolved: {e}"))?;
        // The version is a function of a pure module, so it is asked once,
        // here, under the limits, rather than on every call.
        let mut store = self.store();
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| self.failure(&store, e, "starting").message)?;
        self.abi_version(&mut store, &instance)
            .map_err(|e| e.message)?;
        Ok(Module {
            label: label.to_string(),
            hash,
            exports_filter,
            exports_promote,
            pre,
        })
    }

    /// Calls `entry` (`filter` or `promote`) with `input`, returning the raw
    /// JSON output.
    pub fn call(
        &self,
        module: &Module,
        entry: &str,
        input: &[u8],
    ) -> Result<Called<String>, CallError> {
        let mut store = self.store();
        let result = self.call_in(&mut store, module, entry, input);
        let fuel = self.limits.fuel - store.get_fuel().unwrap_or(0);
        let state = store.data_mut();
        let mut log = std::mem::take(&mut state.log);
        if state.log_dropped {
            log.push(format!(
                "(keelson: later log lines were dropped past {} bytes)",
                self.limits.log
            ));
        }
        match result {
            Ok(output) => Ok(Called { output, log, fuel }),
            Err(mut e) => {
                e.log = log;
                Err(e)
            }
        }
    }

    fn call_in(
        &self,
        store: &mut Store<State>,
        module: &Module,
        entry: &str,
        input: &[u8],
    ) -> Result<String, CallError> {
        let plain = |message: String| CallError {
            message,
            log: Vec::new(),
        };
        let instance = module
            .pre
            .instantiate(&mut *store)
            .map_err(|e| self.failure(store, e, "starting"))?;
        let memory = instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| plain("it has no memory".into()))?;
        let len = i32::try_from(input.len())
            .map_err(|_| plain(format!("its input of {} bytes is too large", input.len())))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut *store, "keelson_alloc")
            .map_err(|e| plain(e.to_string()))?;
        let ptr = alloc
            .call(&mut *store, len)
            .map_err(|e| self.failure(store, e, "allocating its input"))?;
        memory
            .write(&mut *store, ptr as u32 as usize, input)
            .map_err(|_| {
                plain(format!(
                    "`keelson_alloc({len})` returned {ptr:#x}, which is not {len} bytes inside its memory"
                ))
            })?;
        let func = instance
            .get_typed_func::<(i32, i32), i64>(&mut *store, entry)
            .map_err(|_| plain(format!("it does not export `{entry}`")))?;
        let packed = func
            .call(&mut *store, (ptr, len))
            .map_err(|e| self.failure(store, e, entry))?;
        let out_ptr = ((packed as u64) >> 32) as usize;
        let out_len = (packed as u64 & 0xffff_ffff) as usize;
        if out_len > self.limits.output {
            return Err(plain(format!(
                "its output of {out_len} bytes is over the limit of {} bytes",
                self.limits.output
            )));
        }
        let data = memory.data(&*store);
        let bytes = out_ptr
            .checked_add(out_len)
            .and_then(|end| data.get(out_ptr..end))
            .ok_or_else(|| {
                plain(format!(
                    "`{entry}` returned {out_len} bytes at {out_ptr:#x}, outside its memory of {} bytes",
                    data.len()
                ))
            })?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| plain(format!("the output of `{entry}` is not UTF-8")))
    }

    fn abi_version(
        &self,
        store: &mut Store<State>,
        instance: &wasmtime::Instance,
    ) -> Result<(), CallError> {
        let f = instance
            .get_typed_func::<(), i32>(&mut *store, "keelson_abi_version")
            .map_err(|e| CallError {
                message: e.to_string(),
                log: Vec::new(),
            })?;
        let v = f
            .call(&mut *store, ())
            .map_err(|e| self.failure(store, e, "keelson_abi_version"))?;
        if v != abi::VERSION {
            return Err(CallError {
                message: format!(
                    "it speaks policy ABI version {v}, and this keelson speaks only version {}",
                    abi::VERSION
                ),
                log: Vec::new(),
            });
        }
        Ok(())
    }

    fn store(&self) -> Store<State> {
        let mut store = Store::new(
            &self.engine,
            State {
                memory_limit: self.limits.memory,
                memory_hit: false,
                log: Vec::new(),
                log_bytes: 0,
                log_limit: self.limits.log,
                log_dropped: false,
            },
        );
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store
            .set_fuel(self.limits.fuel)
            .expect("fuel is enabled in the config");
        let ticks = (self.limits.deadline.as_millis() / TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    /// Turns a wasmtime error into what the user needs to know.
    fn failure(&self, store: &Store<State>, e: wasmtime::Error, during: &str) -> CallError {
        let l = self.limits;
        let message = if store.data().memory_hit {
            format!(
                "it grew its memory past the limit of {} MiB (during `{during}`)",
                l.memory >> 20
            )
        } else {
            match e.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel) => format!(
                    "it ran out of fuel ({} units) during `{during}`: does it loop forever?",
                    l.fuel
                ),
                Some(Trap::Interrupt) => format!(
                    "it ran past the deadline of {} s during `{during}`",
                    l.deadline.as_secs_f64()
                ),
                Some(Trap::StackOverflow) => {
                    format!("it overflowed its stack during `{during}`: unbounded recursion?")
                }
                Some(Trap::UnreachableCodeReached) => format!(
                    "it trapped during `{during}` (unreachable: a Rust policy panicked or aborted)"
                ),
                Some(trap) => format!("it trapped during `{during}`: {trap}"),
                None => format!("it failed during `{during}`: {e}"),
            }
        };
        CallError {
            message,
            log: Vec::new(),
        }
    }

    fn compile(&self, hash: &str, bytes: &[u8]) -> Result<wasmtime::Module, String> {
        let cached = self.cache.as_ref().map(|d| d.join(format!("{hash}.cwasm")));
        if let Some(path) = &cached
            && let Some(module) = self.read_cached(path)
        {
            return Ok(module);
        }
        let module = wasmtime::Module::new(&self.engine, bytes).map_err(|e| {
            let detail = format!("{e:#}");
            format!("it is not a valid WebAssembly module: {detail}")
        })?;
        if let Some(path) = &cached {
            // A cache that cannot be written only costs time.
            if let Ok(serialized) = module.serialize() {
                let _ = write_cached(path, &serialized);
            }
        }
        Ok(module)
    }

    fn read_cached(&self, path: &Path) -> Option<wasmtime::Module> {
        let bytes = std::fs::read(path).ok()?;
        // Deserialising trusts its input, so the file carries a checksum; a
        // damaged entry is compiled again.
        let (sum, body) = bytes.split_at_checked(32)?;
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        // SAFETY: the bytes are an artifact `Module::serialize` wrote into
        // keelson's own cache (their checksum matches); wasmtime refuses
        // artifacts from another version or configuration.
        unsafe { wasmtime::Module::deserialize(&self.engine, body) }.ok()
    }
}

fn write_cached(path: &Path, serialized: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("a cache file has a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut bytes = Vec::with_capacity(32 + serialized.len());
    bytes.extend_from_slice(blake3::hash(serialized).as_bytes());
    bytes.extend_from_slice(serialized);
    std::fs::write(&tmp, bytes)?;
    // Rename, so a reader never sees half an entry.
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `keelson.log`: copies a message out of the guest, within the log limit.
fn log(caller: &mut Caller<'_, State>, memory: Memory, ptr: usize, len: usize) {
    let (data, state) = memory.data_and_store_mut(caller);
    if state.log_dropped {
        return;
    }
    if state.log_bytes.saturating_add(len) > state.log_limit {
        state.log_dropped = true;
        return;
    }
    let Some(bytes) = ptr.checked_add(len).and_then(|end| data.get(ptr..end)) else {
        state.log.push(format!(
            "(keelson: a log message at {ptr:#x} of {len} bytes is outside the module's memory)"
        ));
        return;
    };
    state.log_bytes += len;
    // Control characters are escaped so a log cannot rewrite the terminal.
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    state.log.push(text);
}

fn same(types: impl ExactSizeIterator<Item = ValType>, want: &[ValType]) -> bool {
    types.len() == want.len() && types.zip(want).all(|(a, b)| ValType::eq(&a, b))
}

fn describe(t: &ExternType) -> &'static str {
    match t {
        ExternType::Func(_) => "a function of another type",
        ExternType::Global(_) => "a global",
        ExternType::Table(_) => "a table",
        ExternType::Memory(_) => "a memory",
        _ => "something else",
    }
}

fn signature(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn wasmtime_major() -> &'static str {
    // Compiled artifacts are specific to the wasmtime that made them;
    // wasmtime checks this too, the directory keeps versions apart.
    "48"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filter that logs `count` copies of its message, then answers `{}`.
    fn logger(message: &str, count: u32) -> String {
        let esc: String = message.bytes().map(|b| format!("\\{b:02x}")).collect();
        format!(
            r#"(module
              (import "keelson" "log" (func $log (param i32 i32)))
              (memory (export "memory") 1)
              (data (i32.const 16) "{esc}")
              (data (i32.const 1024) "{{}}")
              (func (export "keelson_abi_version") (result i32) (i32.const 1))
              (func (export "keelson_alloc") (param i32) (result i32) (i32.const 2048))
              (func (export "filter") (param i32 i32) (result i64)
                (local $i i32)
                (loop $l
                  (call $log (i32.const 16) (i32.const {len}))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if $l (i32.lt_u (local.get $i) (i32.const {count}))))
                (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 2))))"#,
            len = message.len()
        )
    }

    #[test]
    fn a_log_is_kept_within_its_limit_and_cannot_drive_the_terminal() {
        let host = Host::new(Limits::default(), None).unwrap();
        let m = host
            .load("t.wat", logger("red \x1b[31m", 1).as_bytes())
            .unwrap();
        let called = host.call(&m, "filter", b"{}").unwrap();
        assert_eq!(called.log, ["red \\u{1b}[31m"]);

        let limits = Limits {
            log: 100,
            ..Limits::default()
        };
        let host = Host::new(limits, None).unwrap();
        let m = host
            .load("t.wat", logger("0123456789", 50).as_bytes())
            .unwrap();
        let called = host.call(&m, "filter", b"{}").unwrap();
        assert_eq!(called.log.len(), 11, "{:?}", called.log);
        assert!(called.log[10].contains("dropped past 100 bytes"));
    }

    #[test]
    fn compiled_modules_are_cached_and_a_damaged_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let wat = logger("x", 1);
        let host = Host::new(Limits::default(), Some(dir.path().to_path_buf())).unwrap();
        let m = host.load("t.wat", wat.as_bytes()).unwrap();
        let entry = host
            .cache
            .as_ref()
            .unwrap()
            .join(format!("{}.cwasm", m.hash));
        assert!(entry.is_file());
        // A warm load reads the entry.
        let m = host.load("t.wat", wat.as_bytes()).unwrap();
        assert_eq!(host.call(&m, "filter", b"{}").unwrap().output, "{}");
        // A damaged entry fails its checksum: compiled again, and rewritten.
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        assert!(host.read_cached(&entry).is_none());
        let m = host.load("t.wat", wat.as_bytes()).unwrap();
        assert_eq!(host.call(&m, "filter", b"{}").unwrap().output, "{}");
        assert!(host.read_cached(&entry).is_some());
    }
}
