//! The policy host: runs WebAssembly policy modules, sandboxed, for `select`
//! and for `keelson policy`.
//!
//! A policy is a core module with one import (`keelson.log`) and no WASI, so
//! it is a pure function of its JSON input (ABI v1, book/src/policy-abi.md).
//! A broken or hostile module is an error, never a hang or a crash:
//!
//! - loading: the module's size is limited, and it is compiled on a thread
//!   of its own under the deadline (Cranelift cannot be interrupted, so a
//!   module that takes longer is refused and the thread's result dropped);
//! - each call: a fresh instance under fuel, an epoch deadline, output and
//!   log limits, and one memory limit for all its linear memory and tables
//!   together (multi-memory is off, so a module has at most one memory);
//! - all calls: at most `memory_total / memory` run at once, so parallel
//!   apps together never hold more than `memory_total`;
//! - a compile: a fuel budget per module and a breaker that stops calling a
//!   module once it failed (`budget.rs`).
//!
//! Failures are worded for the user; an out-of-bounds trap that is a Rust
//! stack running out is named as one (`stack.rs`).
//!
//! Compiled modules are cached on disk (`cache.rs`): native code, checked
//! against the module's blake3 and the engine before it is loaded.

pub mod abi;
mod budget;
mod cache;
pub mod load;
mod stack;
pub mod stdlib;
pub mod tool;

pub use budget::{Budget, Refused};
pub use load::{Policies, label};

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use wasmtime::{
    Caller, Config, Engine, Extern, ExternType, InstancePre, Linker, Memory, ResourceLimiter,
    Store, Trap, ValType,
};

/// What a module, a call and a compile may use. Going over any limit stops
/// the load or the call, and is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units per call (about one per WebAssembly instruction).
    pub fuel: u64,
    /// Bytes per call of linear memory and tables together.
    pub memory: usize,
    /// Wall-clock time per call, a backstop for fuel; also the most that
    /// compiling one module may take.
    pub deadline: Duration,
    /// Bytes of output read.
    pub output: usize,
    /// Bytes of log kept per call.
    pub log: usize,
    /// Bytes of a module (binary or text).
    pub module_size: usize,
    /// Fuel per module per compile, over all its calls; `None`:
    /// [`COMPILE_CALLS`] × `fuel`.
    pub compile_fuel: Option<u64>,
    /// Bytes that all calls running at once may hold together: at most
    /// `memory_total / memory` calls (at least one) run at the same time.
    pub memory_total: usize,
}

/// The default fuel budget of a module per compile, in full calls' fuel.
pub const COMPILE_CALLS: u64 = 40;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 500_000_000,
            memory: 64 << 20,
            deadline: Duration::from_secs(10),
            output: 1 << 20,
            log: 64 << 10,
            module_size: 8 << 20,
            compile_fuel: None,
            memory_total: 1 << 30,
        }
    }
}

impl Limits {
    /// The fuel one module may use over a compile's calls.
    pub fn compile_fuel(&self) -> u64 {
        self.compile_fuel
            .unwrap_or(self.fuel.saturating_mul(COMPILE_CALLS))
    }

    /// How many calls may run at the same time.
    fn parallel_calls(&self) -> usize {
        (self.memory_total / self.memory.max(1)).max(1)
    }
}

/// The wasmtime major version keelson is built with: compiled artifacts are
/// specific to it (wasmtime checks this too; the cache directory keeps
/// versions apart).
const WASMTIME_MAJOR: &str = "48";

/// Bytes a table element takes: "a pointer's worth of space", as wasmtime's
/// `ResourceLimiter::table_growing` documents.
const TABLE_ELEMENT: usize = std::mem::size_of::<usize>();

/// How often the deadline clock ticks.
const TICK: Duration = Duration::from_millis(10);

/// The engine and its deadline clock. Cheap to share across threads.
pub struct Host {
    engine: Engine,
    /// The one import a policy may use.
    linker: Linker<State>,
    limits: Limits,
    cache: Option<cache::Cache>,
    stop: Arc<AtomicBool>,
    /// Calls that may still start (see [`Limits::memory_total`]).
    slots: Slots,
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
    /// Where its stack starts, when it lays out memory as Rust does
    /// (`stack.rs`).
    stack_top: Option<u32>,
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
    /// Advice for this kind of failure, when there is more to say than
    /// "fix the module".
    pub help: Option<String>,
    /// Fuel the call used before it failed.
    pub fuel: u64,
}

impl CallError {
    fn plain(message: String) -> CallError {
        CallError {
            message,
            log: Vec::new(),
            help: None,
            fuel: 0,
        }
    }
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
    /// Bytes the store's memory and tables hold, together.
    memory_used: usize,
    /// The last growth allowed, given back if it then fails.
    pending: usize,
    /// What went over the limit: `Some("memory")` or `Some("tables")`.
    memory_hit: Option<&'static str>,
    log: Vec<String>,
    log_bytes: usize,
    log_limit: usize,
    log_dropped: bool,
}

impl State {
    /// One limit for everything a call holds: wasmtime asks the limiter per
    /// memory and per table (also for their initial sizes, when an instance
    /// is made), so a running total is what bounds the call, however many
    /// memories or tables a module declares.
    fn grow(&mut self, what: &'static str, bytes: usize) -> wasmtime::Result<bool> {
        let total = self.memory_used.saturating_add(bytes);
        if total > self.memory_limit {
            self.memory_hit = Some(what);
            return Err(wasmtime::format_err!("{what} limit"));
        }
        self.memory_used = total;
        self.pending = bytes;
        Ok(true)
    }

    fn grow_failed(&mut self) {
        self.memory_used -= std::mem::take(&mut self.pending);
    }
}

impl ResourceLimiter for State {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow("memory", desired.saturating_sub(current))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            "tables",
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT),
        )
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    // One instance per store; one memory (multi-memory is off in the engine
    // too); a few tables (rustc emits one).
    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        10
    }
}

/// A counting semaphore: how many calls may still start.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A call's slot, given back when dropped.
struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free slot. Waiting changes no answer: the call's deadline
    /// starts with its store, after the wait.
    fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.0.freed.notify_one();
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
            // One memory per module, so the memory a policy can reach is the
            // one it exports; the limiter bounds memory and tables together
            // in any case.
            .wasm_multi_memory(false)
            // Each module compiles on a thread of its own (`compile_bounded`),
            // not on the shared rayon pool: a compile bomb left running past
            // its deadline must not hold up the next module's compile, or
            // the apps decided on that pool.
            .parallel_compilation(false)
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
            cache: cache_dir.map(|d| cache::Cache::new(&d, &engine)),
            engine,
            linker,
            limits,
            stop,
            slots: Slots::new(limits.parallel_calls()),
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles and checks a module: its size, its imports, its exports and
    /// its ABI version. `bytes` may also be WebAssembly text.
    pub fn load(&self, label: &str, bytes: &[u8]) -> Result<Module, String> {
        let size = self.limits.module_size;
        if bytes.len() > size {
            return Err(format!(
                "it is larger than the limit of {size} bytes for a policy module"
            ));
        }
        let hash = crate::lock::hash(bytes);
        if label.ends_with(".wasm") && !bytes.starts_with(b"\0asm") {
            return Err(
                "it is not a WebAssembly module (a `.wasm` file starts with the bytes `\\0asm`)"
                    .into(),
            );
        }
        let module = self.compile(bytes)?;
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
        let _slot = self.slots.take();
        let mut store = self.store();
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| self.failure(&store, e, "starting", None).message)?;
        self.abi_version(&mut store, &instance)
            .map_err(|e| e.message)?;
        Ok(Module {
            label: label.to_string(),
            hash,
            exports_filter,
            exports_promote,
            stack_top: stack::stack_top(bytes),
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
        let _slot = self.slots.take();
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
                e.fuel = fuel;
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
        let plain = CallError::plain;
        let instance = module
            .pre
            .instantiate(&mut *store)
            .map_err(|e| self.failure(store, e, "starting", None))?;
        let memory = instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| plain("it has no memory".into()))?;
        let stack = module.stack_top.map(|top| (memory, top));
        let len = i32::try_from(input.len())
            .map_err(|_| plain(format!("its input of {} bytes is too large", input.len())))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut *store, "keelson_alloc")
            .map_err(|e| plain(e.to_string()))?;
        let ptr = alloc
            .call(&mut *store, len)
            .map_err(|e| self.failure(store, e, "allocating its input", stack))?;
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
            .map_err(|e| self.failure(store, e, entry, stack))?;
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
            .map_err(|e| CallError::plain(e.to_string()))?;
        let v = f
            .call(&mut *store, ())
            .map_err(|e| self.failure(store, e, "keelson_abi_version", None))?;
        if v != abi::VERSION {
            return Err(CallError::plain(format!(
                "it speaks policy ABI version {v}, and this keelson speaks only version {}",
                abi::VERSION
            )));
        }
        Ok(())
    }

    fn store(&self) -> Store<State> {
        let mut store = Store::new(
            &self.engine,
            State {
                memory_limit: self.limits.memory,
                memory_used: 0,
                pending: 0,
                memory_hit: None,
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

    /// Turns a wasmtime error into what the user needs to know. `stack`:
    /// the instance's memory and where its stack starts, when its layout is
    /// Rust's (to tell a stack overflow, `stack.rs`).
    fn failure(
        &self,
        store: &Store<State>,
        e: wasmtime::Error,
        during: &str,
        stack: Option<(Memory, u32)>,
    ) -> CallError {
        let l = self.limits;
        let mut help = None;
        let message = if let Some(what) = store.data().memory_hit {
            match what {
                "memory" => format!(
                    "it grew its memory past the limit of {} MiB (during `{during}`)",
                    l.memory >> 20
                ),
                _ => format!(
                    "it grew its {what} past the limit of {} MiB, which its memory and tables share (during `{during}`)",
                    l.memory >> 20
                ),
            }
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
                Some(Trap::MemoryOutOfBounds) if let Some(at) = stack::wrapped_address(&e) => {
                    help = Some(STACK_HELP.to_string());
                    format!(
                        "it overflowed its stack during `{during}`: it accessed memory out of bounds at {at:#x}, just below address 0, where a Rust module's stack pointer wraps when its stack runs out; unbounded recursion?"
                    )
                }
                Some(Trap::MemoryOutOfBounds)
                    if let Some((memory, top)) = stack
                        && stack::bottom_used(memory.data(store), top) =>
                {
                    help = Some(STACK_HELP.to_string());
                    let size = if top % (1 << 20) == 0 {
                        format!("{} MiB", top >> 20)
                    } else {
                        format!("{} KiB", top >> 10)
                    };
                    format!(
                        "it most likely overflowed its stack during `{during}`: it accessed memory out of bounds after using its stack (the first {size} of its memory) down to the bottom; unbounded recursion?"
                    )
                }
                Some(trap) => format!("it trapped during `{during}`: {trap}"),
                None => format!("it failed during `{during}`: {e}"),
            }
        };
        CallError {
            message,
            log: Vec::new(),
            help,
            fuel: 0,
        }
    }

    /// A compiled module: from the cache when it holds a sound entry for
    /// these bytes, else compiled under the deadline (and then cached).
    fn compile(&self, bytes: &[u8]) -> Result<wasmtime::Module, String> {
        let key = blake3::hash(bytes);
        if let Some(module) = self.cache.as_ref().and_then(|c| c.read(&self.engine, &key)) {
            return Ok(module);
        }
        let module = self.compile_bounded(bytes)?;
        if let Some(cache) = &self.cache {
            cache.write(&key, &module);
        }
        Ok(module)
    }

    /// Compiles on a thread of its own and waits at most the deadline.
    /// Cranelift's work grows faster than the module in the worst case (a
    /// 1.3 MB module of many locals in nested loops took a minute), and it
    /// cannot be interrupted: a module that takes longer is refused, and the
    /// thread finishes unobserved (its result is dropped; the process does
    /// not wait for it).
    fn compile_bounded(&self, bytes: &[u8]) -> Result<wasmtime::Module, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        std::thread::Builder::new()
            .name("keelson-policy-compile".into())
            // As much stack as a main thread: Cranelift recurses on some
            // shapes of code, and a stack overflow would abort the process.
            .stack_size(8 << 20)
            .spawn(move || {
                let _ = tx.send(wasmtime::Module::new(&engine, &owned));
            })
            .map_err(|e| format!("cannot start a thread to compile it: {e}"))?;
        let deadline = self.limits.deadline;
        match rx.recv_timeout(deadline) {
            Ok(Ok(module)) => Ok(module),
            Ok(Err(e)) => Err(invalid(&e)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "compiling it takes longer than the deadline of {} s: a module this slow to compile (very many locals, deeply nested blocks) is refused",
                deadline.as_secs_f64()
            )),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err("compiling it failed: the compiler stopped without an answer".into())
            }
        }
    }
}

/// Why wasmtime refused to compile a module.
fn invalid(e: &wasmtime::Error) -> String {
    let detail = format!("{e:#}");
    // The validator's words for a second memory, with multi-memory off.
    if detail.contains("multiple memories") {
        return "it declares more than one memory, and a policy may have only one (the `memory` it exports): multi-memory is off in keelson's sandbox".into();
    }
    format!("it is not a valid WebAssembly module: {detail}")
}

const STACK_HELP: &str = "a Rust policy keeps its stack (1 MiB unless linked with `-C link-arg=-zstack-size=BYTES`) at the start of its memory; look for unbounded or very deep recursion and large values on the stack (box them), and give it a bigger stack only if its depth is bounded";

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

    /// A module whose `filter` runs `body` and answers `{}`.
    pub(super) fn filter_doing(body: &str) -> String {
        format!(
            r#"(module
              (memory (export "memory") 1)
              (data (i32.const 1024) "{{}}")
              (func (export "keelson_abi_version") (result i32) (i32.const 1))
              (func (export "keelson_alloc") (param i32) (result i32) (i32.const 2048))
              (func (export "filter") (param i32 i32) (result i64)
                {body}
                (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 2))))"#
        )
    }

    fn entry_of(host: &Host, bytes: &[u8]) -> PathBuf {
        host.cache.as_ref().unwrap().path(&blake3::hash(bytes))
    }

    fn cached(host: &Host, bytes: &[u8]) -> bool {
        let cache = host.cache.as_ref().unwrap();
        cache.read(&host.engine, &blake3::hash(bytes)).is_some()
    }

    #[test]
    fn compiled_modules_are_cached_and_a_damaged_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let wat = logger("x", 1);
        let host = Host::new(Limits::default(), Some(dir.path().to_path_buf())).unwrap();
        host.load("t.wat", wat.as_bytes()).unwrap();
        let entry = entry_of(&host, wat.as_bytes());
        assert!(entry.is_file());
        // A warm load reads the entry.
        assert!(cached(&host, wat.as_bytes()));
        let m = host.load("t.wat", wat.as_bytes()).unwrap();
        assert_eq!(host.call(&m, "filter", b"{}").unwrap().output, "{}");
        // A damaged entry fails its checksum: compiled again, and rewritten.
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        assert!(!cached(&host, wat.as_bytes()));
        let m = host.load("t.wat", wat.as_bytes()).unwrap();
        assert_eq!(host.call(&m, "filter", b"{}").unwrap().output, "{}");
        assert!(cached(&host, wat.as_bytes()));
        // Another host (another compile) with the same engine reads it.
        let again = Host::new(Limits::default(), Some(dir.path().to_path_buf())).unwrap();
        assert_eq!(
            again.cache.as_ref().unwrap().fingerprint(),
            host.cache.as_ref().unwrap().fingerprint()
        );
        assert!(cached(&again, wat.as_bytes()));
    }

    /// The hostile review's cache poisoning: a valid entry of another module
    /// copied under the pinned module's name must not run.
    #[test]
    fn an_entry_of_another_module_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Limits::default(), Some(dir.path().to_path_buf())).unwrap();
        let (pinned, other) = (logger("pinned", 1), logger("other", 1));
        host.load("a.wat", pinned.as_bytes()).unwrap();
        host.load("b.wat", other.as_bytes()).unwrap();
        let (entry, foreign) = (
            entry_of(&host, pinned.as_bytes()),
            entry_of(&host, other.as_bytes()),
        );
        std::fs::copy(&foreign, &entry).unwrap();
        assert!(!cached(&host, pinned.as_bytes()));
        let m = host.load("a.wat", pinned.as_bytes()).unwrap();
        assert_eq!(host.call(&m, "filter", b"{}").unwrap().log, ["pinned"]);
        // The entry was compiled again and rewritten.
        assert_ne!(
            std::fs::read(&entry).unwrap(),
            std::fs::read(&foreign).unwrap()
        );
        assert!(cached(&host, pinned.as_bytes()));
    }

    #[test]
    fn an_entry_of_another_engine_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Limits::default(), Some(dir.path().to_path_buf())).unwrap();
        let wat = logger("x", 1);
        host.load("t.wat", wat.as_bytes()).unwrap();
        let entry = entry_of(&host, wat.as_bytes());
        let mut bytes = std::fs::read(&entry).unwrap();
        // Another fingerprint (another wasmtime, target or configuration),
        // with a checksum that holds: still a miss.
        bytes[40] ^= 1;
        let sum = {
            let mut h = blake3::Hasher::new();
            h.update(&bytes[..72]);
            h.update(&bytes[104..]);
            h.finalize()
        };
        bytes[72..104].copy_from_slice(sum.as_bytes());
        std::fs::write(&entry, &bytes).unwrap();
        assert!(!cached(&host, wat.as_bytes()));
        // An entry in the old format, or of another keelson, likewise.
        std::fs::write(&entry, &bytes[8..]).unwrap();
        assert!(!cached(&host, wat.as_bytes()));
    }

    #[cfg(unix)]
    #[test]
    fn an_entry_others_may_write_is_a_miss() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Limits::default(), Some(dir.path().to_path_buf())).unwrap();
        let wat = logger("x", 1);
        host.load("t.wat", wat.as_bytes()).unwrap();
        let entry = entry_of(&host, wat.as_bytes());
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&entry) & 0o077, 0, "entries are private");
        assert_eq!(mode(entry.parent().unwrap()) & 0o077, 0);
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!cached(&host, wat.as_bytes()));
    }

    /// The hostile review's 24 memories: multi-memory is off, so a second
    /// memory is refused at load with a clear error.
    #[test]
    fn a_module_with_two_memories_is_refused() {
        let host = Host::new(Limits::default(), None).unwrap();
        let wat = filter_doing("").replace(
            r#"(memory (export "memory") 1)"#,
            r#"(memory (export "memory") 1) (memory $second 1)"#,
        );
        let e = host.load("t.wat", wat.as_bytes()).err().unwrap();
        assert!(
            e.starts_with("it declares more than one memory, and a policy may have only one"),
            "{e}"
        );
    }

    /// Memory and tables share one limit per call: 40 MiB of memory and
    /// 4 Mi table elements (32 MiB) are each under 64 MiB, not together.
    #[test]
    fn memory_and_tables_count_together() {
        let host = Host::new(Limits::default(), None).unwrap();
        let body = r#"(if (i32.lt_s (memory.grow (i32.const 640)) (i32.const 0)) (then unreachable))
                      (if (i32.lt_s (table.grow $t (ref.null func) (i32.const 4194304)) (i32.const 0))
                        (then unreachable))"#;
        let wat = filter_doing(body).replace(
            r#"(memory (export "memory") 1)"#,
            r#"(memory (export "memory") 1) (table $t 1 funcref)"#,
        );
        let m = host.load("t.wat", wat.as_bytes()).unwrap();
        let e = host.call(&m, "filter", b"{}").unwrap_err();
        assert_eq!(
            e.message,
            "it grew its tables past the limit of 64 MiB, which its memory and tables share (during `filter`)"
        );
        // Either alone fits.
        let alone = filter_doing(&body.replace("4194304", "1")).replace(
            r#"(memory (export "memory") 1)"#,
            r#"(memory (export "memory") 1) (table $t 1 funcref)"#,
        );
        let m = host.load("t.wat", alone.as_bytes()).unwrap();
        host.call(&m, "filter", b"{}").unwrap();
    }

    #[test]
    fn calls_wait_for_room_under_the_total_memory() {
        let limits = Limits {
            memory: 64 << 20,
            memory_total: 100 << 20,
            ..Limits::default()
        };
        assert_eq!(limits.parallel_calls(), 1);
        assert_eq!(Limits::default().parallel_calls(), 16);
        let host = Host::new(limits, None).unwrap();
        // Each call grows to 60 MiB: two at once would hold 120 MiB.
        let wat = filter_doing(
            "(if (i32.lt_s (memory.grow (i32.const 959)) (i32.const 0)) (then unreachable))",
        );
        let m = host.load("t.wat", wat.as_bytes()).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| host.call(&m, "filter", b"{}").unwrap());
            }
        });
        // The slot is free again, and only one call could hold it.
        assert_eq!(*host.slots.free.lock().unwrap(), 1);
    }

    #[test]
    fn a_call_waits_while_no_slot_is_free() {
        let slots = Slots::new(1);
        let held = slots.take();
        let got = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _slot = slots.take();
                got.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!got.load(Ordering::SeqCst), "two calls held one slot");
            drop(held);
        });
        assert!(got.load(Ordering::SeqCst));
        assert_eq!(*slots.free.lock().unwrap(), 1);
    }

    #[test]
    fn a_module_over_the_size_limit_is_refused() {
        let limits = Limits {
            module_size: 100,
            ..Limits::default()
        };
        let host = Host::new(limits, None).unwrap();
        let wat = logger("x", 1);
        let e = host.load("t.wat", wat.as_bytes()).err().unwrap();
        assert_eq!(
            e,
            "it is larger than the limit of 100 bytes for a policy module"
        );
    }

    /// A compile bomb in the manner of the hostile review's (many locals,
    /// nested loops): about a second to compile here, against a 100 ms
    /// deadline.
    pub(super) fn compile_bomb(locals: usize, depth: usize, uses: usize) -> String {
        let mut body = String::new();
        for _ in 0..depth {
            body.push_str("(loop ");
        }
        for u in 0..uses {
            let (a, b) = (2 + u % locals, 2 + (u * 7 + 1) % locals);
            body.push_str(&format!(
                "(local.set {a} (i64.add (local.get {a}) (local.get {b})))"
            ));
        }
        for d in 0..depth {
            body.push_str(&format!(
                "(br_if 0 (i64.eqz (local.get {}))))",
                2 + d % locals
            ));
        }
        filter_doing(&format!("(local{}) {body}", " i64".repeat(locals)))
    }

    #[test]
    fn a_module_too_slow_to_compile_is_refused_in_bounded_time() {
        let limits = Limits {
            deadline: Duration::from_millis(100),
            ..Limits::default()
        };
        let host = Host::new(limits, None).unwrap();
        let bomb = compile_bomb(1000, 200, 500);
        let started = std::time::Instant::now();
        let e = host.load("t.wat", bomb.as_bytes()).err().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            e,
            "compiling it takes longer than the deadline of 0.1 s: a module this slow to compile (very many locals, deeply nested blocks) is refused"
        );
    }

    /// What rustc makes of unbounded recursion: frames in linear memory,
    /// under a `__stack_pointer` that starts at the top of a stack at the
    /// start of memory and wraps below 0.
    pub(super) const SHADOW_STACK_OVERFLOW: &str = r#"(module
        (memory (export "memory") 2)
        (global $sp (mut i32) (i32.const 65536))
        (func (export "keelson_abi_version") (result i32) (i32.const 1))
        (func (export "keelson_alloc") (param i32) (result i32) (i32.const 70000))
        (func $down (param $n i32)
          (local $frame i32)
          (global.set $sp (local.tee $frame (i32.sub (global.get $sp) (i32.const 64))))
          (i32.store offset=8 (local.get $frame) (local.get $n))
          (call $down (i32.add (local.get $n) (i32.const 1)))
          (global.set $sp (i32.add (local.get $frame) (i32.const 64))))
        (func (export "filter") (param i32 i32) (result i64)
          (call $down (i32.const 0))
          (i64.const 0)))"#;

    #[test]
    fn a_shadow_stack_overflow_is_named_as_such() {
        let host = Host::new(Limits::default(), None).unwrap();
        let m = host
            .load("t.wat", SHADOW_STACK_OVERFLOW.as_bytes())
            .unwrap();
        let e = host.call(&m, "filter", b"{}").unwrap_err();
        assert_eq!(
            e.message,
            "it overflowed its stack during `filter`: it accessed memory out of bounds at 0xffffffc8, just below address 0, where a Rust module's stack pointer wraps when its stack runs out; unbounded recursion?"
        );
        assert!(e.help.unwrap().contains("-zstack-size"));
        // A stray access far from 0 is still just out of bounds.
        let wat = filter_doing("(drop (i32.load (i32.const 0x10000000)))");
        let m = host.load("t.wat", wat.as_bytes()).unwrap();
        let e = host.call(&m, "filter", b"{}").unwrap_err();
        assert_eq!(
            e.message,
            "it trapped during `filter`: wasm trap: out of bounds memory access"
        );
        assert_eq!(e.help, None);
    }
}
