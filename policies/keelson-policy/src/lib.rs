//! Write keelson policies in Rust.
//!
//! A keelson policy is a WebAssembly core module that speaks the policy ABI,
//! version 1 (`book/src/policy-abi.md`): keelson hands it JSON and reads
//! JSON back. This crate does the ABI for you. A policy is a plain function
//! over typed input:
//!
//! ```
//! use keelson_policy::{Error, FilterInput, PromoteInput, Promotion, Verdict};
//!
//! fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
//!     Ok(input
//!         .candidates
//!         .iter()
//!         .map(|c| match c.tag.as_str() {
//!             "latest" => Verdict::deny(&c.tag, "`latest` moves; use a version tag"),
//!             _ => Verdict::allow(&c.tag),
//!         })
//!         .collect())
//! }
//!
//! fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
//!     Ok(Promotion::promote(format!("{} looks fine", input.upstream.describe())))
//! }
//!
//! keelson_policy::export!(filter = filter, promote = promote);
//! # fn main() {}
//! ```
//!
//! [`export!`] generates the module's exports (`keelson_abi_version`,
//! `keelson_alloc`, `filter`, `promote`) when building for `wasm32`; on any
//! other target it only checks the functions' types, so the same functions
//! are unit-tested as plain Rust, or through the JSON with [`call_filter`] and
//! [`call_promote`].
//!
//! On `wasm32`, [`log`] calls the host's `keelson.log`, and a panic logs its
//! message (with [`log`]) before the module traps, so keelson's error says
//! why. Natively, [`log`] keeps messages in a per-thread buffer that
//! [`take_log`] returns, so tests can check what a policy logged.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

pub mod time;
pub mod version;

pub use serde_json;
pub use time::{Date, Time, Weekday};
pub use version::Version;

/// The ABI version this crate speaks; `keelson_abi_version` returns it.
pub const ABI_VERSION: i32 = 1;

// ---------------------------------------------------------------------------
// Inputs

/// Who is asking, and when: the same for every call of one policy for one
/// app, stage and image in a compile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// The policy's name in the estate (`policy "NAME"`).
    pub policy: String,
    pub app: String,
    pub stage: String,
    pub image: String,
    pub repository: String,
    /// The image's update strategy (`semver`, `newest-build`, …).
    pub strategy: String,
    /// The compile's time. A policy has no clock: this is the only "now".
    pub now: Time,
    /// The policy's `params` block as JSON (`{}` when it has none). Read it
    /// typed with [`Context::params`].
    #[serde(default)]
    pub params: Map<String, Value>,
}

impl Context {
    /// The `params` block read as `P` (usually a `#[derive(Deserialize)]`
    /// struct; add `#[serde(deny_unknown_fields)]` to catch misspelt
    /// parameters). Fails with an [`Error`] that says what is wrong.
    pub fn params<P: DeserializeOwned>(&self) -> Result<P, Error> {
        serde_json::from_value(Value::Object(self.params.clone()))
            .map_err(|e| Error::new(format!("bad params: {e}")))
    }

    /// Fails unless the `params` block is empty: for policies that take none.
    pub fn no_params(&self) -> Result<(), Error> {
        match self.params.keys().next() {
            None => Ok(()),
            Some(first) => Err(Error::new(format!(
                "bad params: this policy takes no params, but it was given `{first}`"
            ))),
        }
    }

    /// Returns the context with `params` set to `params`, which must be a JSON
    /// object. For tests: `Context::default().with_params(json!({"hours": 24}))`.
    ///
    /// # Panics
    /// If `params` is not an object.
    pub fn with_params(mut self, params: Value) -> Context {
        match params {
            Value::Object(map) => self.params = map,
            other => panic!("params must be a JSON object, not {other}"),
        }
        self
    }
}

/// A tag a filter judges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub tag: String,
    /// `None` where the tag source does not know it.
    pub digest: Option<String>,
    /// When the image was built, from its config; `None` where unknown.
    pub created: Option<Time>,
}

impl Candidate {
    /// A candidate with no digest and no creation time.
    pub fn new(tag: impl Into<String>) -> Candidate {
        Candidate {
            tag: tag.into(),
            ..Candidate::default()
        }
    }

    /// The tag read as a version, when it is one ([`Version::parse`]).
    pub fn version(&self) -> Option<Version> {
        Version::parse(&self.tag)
    }
}

/// What a stage runs now (`current`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub since: Time,
}

impl Running {
    /// The tag read as a version, when there is one and it is one.
    pub fn version(&self) -> Option<Version> {
        self.tag.as_deref().and_then(Version::parse)
    }
}

/// What a stage ran before (`history`, newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Past {
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub since: Time,
    pub until: Time,
}

/// What the upstream stage runs after this compile (`promote` only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// The upstream stage's name.
    pub stage: String,
    pub tag: Option<String>,
    /// `None` when unknown.
    pub digest: Option<String>,
    pub since: Time,
    /// `now − since`, in seconds.
    pub age_seconds: i64,
}

impl Upstream {
    /// The tag read as a version, when there is one and it is one.
    pub fn version(&self) -> Option<Version> {
        self.tag.as_deref().and_then(Version::parse)
    }

    /// How a message names the image: its tag, else its digest, else
    /// `"stg's image"`.
    pub fn describe(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => tag.clone(),
            (None, Some(digest)) => digest.clone(),
            (None, None) => format!("{}'s image", self.stage),
        }
    }
}

/// The input of `filter`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct FilterInput {
    pub context: Context,
    /// What this stage runs for this image, or `None` if it never ran one.
    pub current: Option<Running>,
    /// What it ran before, newest first.
    #[serde(default)]
    pub history: Vec<Past>,
    /// The tags to judge, best first by the strategy.
    pub candidates: Vec<Candidate>,
}

/// The input of `promote`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PromoteInput {
    pub context: Context,
    pub upstream: Upstream,
    /// What this stage runs for this image, or `None` if it never ran one.
    pub current: Option<Running>,
    /// What it ran before, newest first.
    #[serde(default)]
    pub history: Vec<Past>,
}

/// Inputs serialize as the host writes them, with `abi` and `entry`.
impl Serialize for FilterInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            abi: i32,
            entry: &'static str,
            context: &'a Context,
            current: &'a Option<Running>,
            history: &'a [Past],
            candidates: &'a [Candidate],
        }
        Wire {
            abi: ABI_VERSION,
            entry: "filter",
            context: &self.context,
            current: &self.current,
            history: &self.history,
            candidates: &self.candidates,
        }
        .serialize(s)
    }
}

impl Serialize for PromoteInput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            abi: i32,
            entry: &'static str,
            context: &'a Context,
            upstream: &'a Upstream,
            current: &'a Option<Running>,
            history: &'a [Past],
        }
        Wire {
            abi: ABI_VERSION,
            entry: "promote",
            context: &self.context,
            upstream: &self.upstream,
            current: &self.current,
            history: &self.history,
        }
        .serialize(s)
    }
}

// ---------------------------------------------------------------------------
// Outputs

/// A filter's decision on one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

/// A filter's answer for one candidate. Return exactly one per candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub tag: String,
    pub decision: Decision,
    /// Required (non-empty) for `deny`; optional for `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Verdict {
    /// Keep `tag`.
    pub fn allow(tag: impl Into<String>) -> Verdict {
        Verdict {
            tag: tag.into(),
            decision: Decision::Allow,
            reason: None,
        }
    }

    /// Drop `tag`, saying why (the reason must not be empty).
    pub fn deny(tag: impl Into<String>, reason: impl Into<String>) -> Verdict {
        Verdict {
            tag: tag.into(),
            decision: Decision::Deny,
            reason: Some(reason.into()),
        }
    }

    /// The verdict with a reason; for an `allow`, a note for `keelson policy
    /// test` and the trace.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Verdict {
        self.reason = Some(reason.into());
        self
    }

    pub fn is_allow(&self) -> bool {
        self.decision == Decision::Allow
    }
}

/// A gate's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateDecision {
    Promote,
    Hold,
}

/// A gate's answer: take the upstream's image, or keep the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub decision: GateDecision,
    /// Required and non-empty either way.
    pub reason: String,
}

impl Promotion {
    /// Take the upstream's image.
    pub fn promote(reason: impl Into<String>) -> Promotion {
        Promotion {
            decision: GateDecision::Promote,
            reason: reason.into(),
        }
    }

    /// Keep what this stage runs.
    pub fn hold(reason: impl Into<String>) -> Promotion {
        Promotion {
            decision: GateDecision::Hold,
            reason: reason.into(),
        }
    }

    pub fn is_promote(&self) -> bool {
        self.decision == GateDecision::Promote
    }
}

/// The input could not be judged (most often: bad `params`). It becomes the
/// answer `{"error": "…"}`, which keelson reports as
/// `keelson::policy-failed`, failing the compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::new(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::new(e.to_string())
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            error: &'a str,
        }
        Wire {
            error: &self.message,
        }
        .serialize(s)
    }
}

/// For params that may be one value or a list: KDL's `days "mon"` is the
/// string `"mon"`, `days "mon" "tue"` the list `["mon", "tue"]`. Use as
/// `#[serde(deserialize_with = "keelson_policy::one_or_many")]` on a `Vec`.
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::de::Error as _;
    match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(D::Error::custom))
            .collect(),
        one => serde_json::from_value(one)
            .map(|v| vec![v])
            .map_err(D::Error::custom),
    }
}

// ---------------------------------------------------------------------------
// Calling a policy through the JSON

/// The type of a filter function, as [`export!`] takes it.
pub type FilterFn = fn(&FilterInput) -> Result<Vec<Verdict>, Error>;
/// The type of a promote function, as [`export!`] takes it.
pub type PromoteFn = fn(&PromoteInput) -> Result<Promotion, Error>;

/// Runs `filter` on JSON input as the host would, returning the JSON output:
/// `{"verdicts": […]}` or `{"error": "…"}`.
pub fn call_filter<F>(filter: F, input: impl AsRef<[u8]>) -> String
where
    F: FnOnce(&FilterInput) -> Result<Vec<Verdict>, Error>,
{
    #[derive(Serialize)]
    struct Verdicts {
        verdicts: Vec<Verdict>,
    }
    let result = read::<FilterInput>(input.as_ref(), "filter")
        .and_then(|input| filter(&input))
        .map(|verdicts| Verdicts { verdicts });
    answer(result)
}

/// Runs `promote` on JSON input as the host would, returning the JSON output:
/// `{"decision": …, "reason": …}` or `{"error": "…"}`.
pub fn call_promote<F>(promote: F, input: impl AsRef<[u8]>) -> String
where
    F: FnOnce(&PromoteInput) -> Result<Promotion, Error>,
{
    answer(read::<PromoteInput>(input.as_ref(), "promote").and_then(|input| promote(&input)))
}

fn read<T: DeserializeOwned>(input: &[u8], entry: &str) -> Result<T, Error> {
    serde_json::from_slice(input).map_err(|e| {
        Error::new(format!(
            "keelson-policy: the `{entry}` input is not what ABI v{ABI_VERSION} describes: {e}"
        ))
    })
}

fn answer<T: Serialize>(result: Result<T, Error>) -> String {
    let json = match &result {
        Ok(output) => serde_json::to_string(output),
        Err(error) => serde_json::to_string(error),
    };
    json.unwrap_or_else(|e| {
        format!(r#"{{"error":"keelson-policy: cannot write the output: {e}"}}"#)
    })
}

// ---------------------------------------------------------------------------
// Logging

/// Logs `message` for the trace and `keelson policy test` (the host keeps
/// 64 KiB per call). On `wasm32` this calls the import `keelson.log`;
/// natively the message goes to a per-thread buffer read by [`take_log`].
pub fn log(message: impl AsRef<str>) {
    imp::log(message.as_ref());
}

/// The messages [`log`] kept on this thread since the last call, oldest
/// first. Always empty on `wasm32`, where messages go to the host.
pub fn take_log() -> Vec<String> {
    imp::take_log()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    #[link(wasm_import_module = "keelson")]
    unsafe extern "C" {
        #[link_name = "log"]
        fn host_log(ptr: *const u8, len: usize);
    }

    pub fn log(message: &str) {
        // SAFETY: the host only reads `len` bytes at `ptr`, which are ours.
        unsafe { host_log(message.as_ptr(), message.len()) }
    }

    pub fn take_log() -> Vec<String> {
        Vec::new()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;

    thread_local! {
        static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    pub fn log(message: &str) {
        LOG.with(|l| l.borrow_mut().push(message.to_string()));
    }

    pub fn take_log() -> Vec<String> {
        LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}

// ---------------------------------------------------------------------------
// The exports

/// Exports a policy's functions as the module's ABI entry points.
///
/// ```ignore
/// keelson_policy::export!(filter = my_filter);
/// keelson_policy::export!(promote = my_promote);
/// keelson_policy::export!(filter = my_filter, promote = my_promote);
/// ```
///
/// Each function is a path to a plain function: a filter is a
/// [`FilterFn`], `fn(&FilterInput) -> Result<Vec<Verdict>, Error>`; a
/// promote is a [`PromoteFn`], `fn(&PromoteInput) -> Result<Promotion,
/// Error>`. Use it once per crate, at the top level.
///
/// On `wasm32` it generates `keelson_abi_version`, `keelson_alloc` and the
/// named entry points (`#[unsafe(export_name = …)] pub extern "C"`; the Rust
/// names are private to the macro, so your functions may be called `filter`
/// and `promote`). Every entry point installs a panic hook that logs the
/// panic message before the module traps. Elsewhere it only checks the
/// functions' types.
#[macro_export]
macro_rules! export {
    (filter = $filter:path, promote = $promote:path $(,)?) => {
        $crate::__export_base!();
        $crate::__export_filter!($filter);
        $crate::__export_promote!($promote);
    };
    (promote = $promote:path, filter = $filter:path $(,)?) => {
        $crate::export!(filter = $filter, promote = $promote);
    };
    (filter = $filter:path $(,)?) => {
        $crate::__export_base!();
        $crate::__export_filter!($filter);
    };
    (promote = $promote:path $(,)?) => {
        $crate::__export_base!();
        $crate::__export_promote!($promote);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_base {
    () => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(export_name = "keelson_abi_version")]
            pub extern "C" fn __keelson_abi_version() -> i32 {
                $crate::ABI_VERSION
            }

            #[unsafe(export_name = "keelson_alloc")]
            pub extern "C" fn __keelson_alloc(len: i32) -> i32 {
                $crate::__private::alloc(len)
            }
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_filter {
    ($filter:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(export_name = "filter")]
            pub extern "C" fn __keelson_filter(ptr: i32, len: i32) -> i64 {
                // SAFETY: the host wrote `len` bytes at `ptr`, from `keelson_alloc`.
                unsafe { $crate::__private::filter(ptr, len, $filter) }
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: $crate::FilterFn = $filter;
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_promote {
    ($promote:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(export_name = "promote")]
            pub extern "C" fn __keelson_promote(ptr: i32, len: i32) -> i64 {
                // SAFETY: the host wrote `len` bytes at `ptr`, from `keelson_alloc`.
                unsafe { $crate::__private::promote(ptr, len, $promote) }
            }
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: $crate::PromoteFn = $promote;
    };
}

/// The glue [`export!`] calls. Not a stable API.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    use super::{FilterFn, PromoteFn};

    /// `keelson_alloc`: `len` writable bytes that live as long as the
    /// instance (which the host makes afresh for every call).
    pub fn alloc(len: i32) -> i32 {
        let layout = std::alloc::Layout::from_size_align((len as u32 as usize).max(1), 1)
            .unwrap_or_else(|_| std::process::abort());
        // SAFETY: the layout's size is not zero.
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        ptr as usize as i32
    }

    /// # Safety
    /// `len` bytes at `ptr` must be readable.
    pub unsafe fn filter(ptr: i32, len: i32, f: FilterFn) -> i64 {
        hook();
        // SAFETY: the caller's promise.
        let input = unsafe { input(ptr, len) };
        output(super::call_filter(f, input))
    }

    /// # Safety
    /// `len` bytes at `ptr` must be readable.
    pub unsafe fn promote(ptr: i32, len: i32, f: PromoteFn) -> i64 {
        hook();
        // SAFETY: the caller's promise.
        let input = unsafe { input(ptr, len) };
        output(super::call_promote(f, input))
    }

    unsafe fn input<'a>(ptr: i32, len: i32) -> &'a [u8] {
        let len = len as u32 as usize;
        if len == 0 {
            return &[];
        }
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(ptr as u32 as usize as *const u8, len) }
    }

    /// Leaks the output (the instance is dropped after the call) and packs
    /// its address and length as `(ptr << 32) | len`.
    fn output(json: String) -> i64 {
        let bytes = json.into_bytes().into_boxed_slice();
        let len = bytes.len() as u64;
        let ptr = Box::into_raw(bytes) as *mut u8 as usize as u64;
        ((ptr << 32) | len) as i64
    }

    /// Logs a panic's message and place before the module traps.
    fn hook() {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            match info.location() {
                Some(at) => super::log(format!(
                    "policy panicked at {}:{}:{}: {message}",
                    at.file(),
                    at.line(),
                    at.column()
                )),
                None => super::log(format!("policy panicked: {message}")),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The `filter` input of book/src/policy-abi.md, as written there.
    const FILTER_INPUT: &str = r#"{
      "abi": 1,
      "entry": "filter",
      "context": {
        "policy": "no-mutable-tags",
        "app": "nexus",
        "stage": "stg",
        "image": "backup",
        "repository": "ghcr.io/tirosh-chain/nexus-backup",
        "strategy": "semver",
        "now": "2026-11-23T09:30:00Z",
        "params": { "tags": ["latest", "main"] }
      },
      "current": { "tag": "1.0.0", "digest": "sha256:…", "since": "2026-11-20T08:00:00Z" },
      "history": [
        { "tag": "0.9.1", "digest": null, "since": "2026-10-01T08:00:00Z", "until": "2026-11-20T08:00:00Z" }
      ],
      "candidates": [
        { "tag": "1.1.0", "digest": "sha256:…", "created": "2026-11-22T17:04:11Z" },
        { "tag": "1.0.1", "digest": null, "created": null }
      ]
    }"#;

    /// The `promote` input of the spec, with its elided context filled in.
    const PROMOTE_INPUT: &str = r#"{
      "abi": 1,
      "entry": "promote",
      "context": {
        "policy": "soak-one-day", "app": "inference", "stage": "prd", "image": "server",
        "repository": "ghcr.io/tirosh-chain/inference", "strategy": "semver",
        "now": "2026-11-23T09:30:00Z", "params": {}
      },
      "upstream": {
        "stage": "stg",
        "tag": "0.5.0",
        "digest": "sha256:…",
        "since": "2026-11-22T09:00:00Z",
        "age_seconds": 88200
      },
      "current": { "tag": "0.4.0", "digest": "sha256:…", "since": "2026-11-01T09:00:00Z" },
      "history": []
    }"#;

    fn t(s: &str) -> Time {
        Time::parse(s).unwrap()
    }

    #[test]
    fn reads_the_spec_filter_input() {
        let input: FilterInput = serde_json::from_str(FILTER_INPUT).unwrap();
        assert_eq!(input.context.policy, "no-mutable-tags");
        assert_eq!(
            input.context.repository,
            "ghcr.io/tirosh-chain/nexus-backup"
        );
        assert_eq!(input.context.now, t("2026-11-23T09:30:00Z"));
        assert_eq!(input.context.params["tags"], json!(["latest", "main"]));
        let current = input.current.as_ref().unwrap();
        assert_eq!(current.tag.as_deref(), Some("1.0.0"));
        assert_eq!(current.since, t("2026-11-20T08:00:00Z"));
        assert_eq!(input.history[0].digest, None);
        assert_eq!(input.history[0].until, t("2026-11-20T08:00:00Z"));
        assert_eq!(input.candidates.len(), 2);
        assert_eq!(input.candidates[0].created, Some(t("2026-11-22T17:04:11Z")));
        assert_eq!(input.candidates[1], Candidate::new("1.0.1"));
    }

    #[test]
    fn inputs_round_trip_in_the_spec_shape() {
        for (text, entry) in [(FILTER_INPUT, "filter"), (PROMOTE_INPUT, "promote")] {
            let original: Value = serde_json::from_str(text).unwrap();
            let again = if entry == "filter" {
                serde_json::to_value(serde_json::from_str::<FilterInput>(text).unwrap())
            } else {
                serde_json::to_value(serde_json::from_str::<PromoteInput>(text).unwrap())
            }
            .unwrap();
            assert_eq!(again, original, "{entry}");
        }
    }

    #[test]
    fn reads_the_spec_promote_input() {
        let input: PromoteInput = serde_json::from_str(PROMOTE_INPUT).unwrap();
        assert_eq!(input.upstream.stage, "stg");
        assert_eq!(input.upstream.tag.as_deref(), Some("0.5.0"));
        assert_eq!(input.upstream.age_seconds, 88_200);
        assert_eq!(
            input.context.now.seconds_since(input.upstream.since),
            input.upstream.age_seconds
        );
        assert_eq!(input.upstream.version(), Version::parse("0.5.0"));
        assert_eq!(input.current.unwrap().version(), Version::parse("0.4.0"));
        assert!(input.history.is_empty());
    }

    #[test]
    fn inputs_ignore_fields_they_do_not_know() {
        let mut v: Value = serde_json::from_str(FILTER_INPUT).unwrap();
        v["added-later"] = json!({"x": 1});
        v["context"]["cluster"] = json!("eu-1");
        v["candidates"][0]["platforms"] = json!(["linux/amd64"]);
        v["current"]["lock"] = json!(true);
        let input: FilterInput = serde_json::from_value(v).unwrap();
        assert_eq!(input.candidates[0].tag, "1.1.0");
        // `current: null`, `history` missing, `params` missing.
        let input: PromoteInput = serde_json::from_value(json!({
            "context": {"policy": "p", "app": "a", "stage": "s", "image": "i",
                        "repository": "r", "strategy": "digest", "now": "2026-01-01T00:00:00Z"},
            "upstream": {"stage": "stg", "tag": null, "digest": null,
                         "since": "2026-01-01T00:00:00Z", "age_seconds": 0},
            "current": null
        }))
        .unwrap();
        assert_eq!(input.current, None);
        assert!(input.context.params.is_empty());
        assert_eq!(input.upstream.describe(), "stg's image");
    }

    #[test]
    fn verdicts_and_promotions_in_the_spec_shape() {
        assert_eq!(
            serde_json::to_value(Verdict::allow("1.1.0")).unwrap(),
            json!({ "tag": "1.1.0", "decision": "allow" })
        );
        assert_eq!(
            serde_json::to_value(Verdict::deny(
                "1.0.1",
                "no image config: creation time unknown"
            ))
            .unwrap(),
            json!({ "tag": "1.0.1", "decision": "deny", "reason": "no image config: creation time unknown" })
        );
        assert_eq!(
            serde_json::to_value(Verdict::allow("x").with_reason("fine")).unwrap(),
            json!({ "tag": "x", "decision": "allow", "reason": "fine" })
        );
        assert_eq!(
            serde_json::to_value(Promotion::hold(
                "0.5.0 has been in stg for 24h30m, less than 48h"
            ))
            .unwrap(),
            json!({ "decision": "hold", "reason": "0.5.0 has been in stg for 24h30m, less than 48h" })
        );
        assert_eq!(
            serde_json::to_value(Promotion::promote("ok")).unwrap(),
            json!({ "decision": "promote", "reason": "ok" })
        );
        assert_eq!(
            serde_json::to_value(Error::new("bad params: missing field `hours`")).unwrap(),
            json!({ "error": "bad params: missing field `hours`" })
        );
    }

    fn deny_latest(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
        let p: serde_json::Map<String, Value> = input.context.params()?;
        log(format!("{} params", p.len()));
        Ok(input
            .candidates
            .iter()
            .map(|c| match c.tag.as_str() {
                "1.0.1" => Verdict::deny(&c.tag, "no image config: creation time unknown"),
                _ => Verdict::allow(&c.tag),
            })
            .collect())
    }

    fn soak(input: &PromoteInput) -> Result<Promotion, Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct P {
            hours: i64,
        }
        let P { hours } = input.context.params()?;
        Ok(if input.upstream.age_seconds >= hours * 3600 {
            Promotion::promote("old enough")
        } else {
            Promotion::hold(format!(
                "{} has been in {} for {}, less than {hours}h",
                input.upstream.describe(),
                input.upstream.stage,
                time::format_duration(input.upstream.age_seconds)
            ))
        })
    }

    #[test]
    fn calls_through_the_json() {
        let out = call_filter(deny_latest, FILTER_INPUT);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({ "verdicts": [
                { "tag": "1.1.0", "decision": "allow" },
                { "tag": "1.0.1", "decision": "deny", "reason": "no image config: creation time unknown" }
            ]})
        );
        assert_eq!(take_log(), ["1 params"]);
        assert!(take_log().is_empty());

        let mut v: Value = serde_json::from_str(PROMOTE_INPUT).unwrap();
        v["context"]["params"] = json!({ "hours": 48 });
        assert_eq!(
            serde_json::from_str::<Value>(&call_promote(soak, v.to_string())).unwrap(),
            json!({ "decision": "hold", "reason": "0.5.0 has been in stg for 24h30m, less than 48h" })
        );
        v["context"]["params"] = json!({ "hours": 24 });
        assert_eq!(
            call_promote(soak, v.to_string()),
            r#"{"decision":"promote","reason":"old enough"}"#
        );
    }

    #[test]
    fn errors_become_error_answers() {
        let mut v: Value = serde_json::from_str(PROMOTE_INPUT).unwrap();
        v["context"]["params"] = json!({ "hourz": 48 });
        let out: Value = serde_json::from_str(&call_promote(soak, v.to_string())).unwrap();
        let msg = out["error"].as_str().unwrap();
        assert!(
            msg.starts_with("bad params: unknown field `hourz`"),
            "{msg}"
        );
        assert_eq!(out.as_object().unwrap().len(), 1);

        let out: Value = serde_json::from_str(&call_filter(deny_latest, "{\"abi\": 1}")).unwrap();
        let msg = out["error"].as_str().unwrap();
        assert!(
            msg.starts_with("keelson-policy: the `filter` input is not what ABI v1 describes: missing field `context`"),
            "{msg}"
        );
        let out: Value = serde_json::from_str(&call_filter(deny_latest, [0xff, 0xfe])).unwrap();
        assert!(out["error"].is_string());
        let mut v: Value = serde_json::from_str(FILTER_INPUT).unwrap();
        v["context"]["now"] = json!("today");
        let out: Value = serde_json::from_str(&call_filter(deny_latest, v.to_string())).unwrap();
        assert!(
            out["error"]
                .as_str()
                .unwrap()
                .contains("`today` is not an RFC 3339 time")
        );
    }

    #[test]
    fn params_helpers() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct P {
            #[serde(deserialize_with = "one_or_many")]
            days: Vec<String>,
        }
        let ctx = Context::default().with_params(json!({ "days": "mon" }));
        assert_eq!(ctx.params::<P>().unwrap().days, ["mon"]);
        let ctx = Context::default().with_params(json!({ "days": ["mon", "tue"] }));
        assert_eq!(ctx.params::<P>().unwrap().days, ["mon", "tue"]);
        let ctx = Context::default().with_params(json!({ "days": ["mon", 3] }));
        let e = ctx.params::<P>().unwrap_err();
        assert!(
            e.message()
                .starts_with("bad params: invalid type: integer `3`"),
            "{e}"
        );
        let ctx = Context::default().with_params(json!({}));
        assert_eq!(
            ctx.params::<P>().unwrap_err().message(),
            "bad params: missing field `days`"
        );
        assert_eq!(ctx.no_params(), Ok(()));
        let ctx = Context::default().with_params(json!({ "tags": "x" }));
        assert_eq!(
            ctx.no_params().unwrap_err().message(),
            "bad params: this policy takes no params, but it was given `tags`"
        );
    }

    #[test]
    fn helpers() {
        assert!(Verdict::allow("a").is_allow());
        assert!(!Verdict::deny("a", "b").is_allow());
        assert!(Promotion::promote("a").is_promote());
        assert!(!Promotion::hold("a").is_promote());
        let up = Upstream {
            stage: "stg".into(),
            digest: Some("sha256:ab".into()),
            ..Upstream::default()
        };
        assert_eq!(up.describe(), "sha256:ab");
        assert_eq!(Error::from("x").to_string(), "x");
        assert_eq!(
            Candidate::new("v2.1").version(),
            Some(Version::new(2, 1, 0))
        );
    }

    // The export macro type-checks natively, for every form.
    mod exported_both {
        use crate::*;
        fn filter(_: &FilterInput) -> Result<Vec<Verdict>, Error> {
            Ok(Vec::new())
        }
        fn promote(_: &PromoteInput) -> Result<Promotion, Error> {
            Err(Error::new("no"))
        }
        crate::export!(promote = promote, filter = filter,);
    }
    mod exported_filter {
        crate::export!(filter = super::deny_latest);
    }
    mod exported_promote {
        crate::export!(promote = super::soak);
    }
}
