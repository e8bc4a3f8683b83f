//! The on-disk cache of compiled policy modules (`<cache>/policy-v2-wasmtime48/`).
//!
//! An entry is native code: loading one runs whatever machine code it holds
//! when the policy is called, and wasmtime's `Module::deserialize` trusts its
//! input. So an entry is used only when everything it claims matches, checked
//! *before* deserialising:
//!
//! ```text
//! 0..8     magic: b"KPCWASM\x02"
//! 8..40    blake3 of the module's bytes (the pin): the entry is for this module
//! 40..72   the engine's fingerprint: keelson's and wasmtime's versions, and
//!          wasmtime's own hash of everything that shapes its code (target,
//!          Cranelift flags, tunables, WebAssembly features)
//! 72..104  blake3 of bytes 0..72 and the body: the entry is whole
//! 104..    the body: what `Module::serialize` wrote
//! ```
//!
//! Anything else — another module's entry copied under this module's name, an
//! entry of another keelson, wasmtime or configuration, a truncated or damaged
//! file, a file others may write — is a miss: the module is compiled again
//! and the entry rewritten. None of this makes a *forged* entry safe: whoever
//! can write the cache directory can write a well-formed entry with any code
//! in it. The directory must be trusted as much as the keelson binary itself
//! (book: Policies, "Limits"); keelson creates it private to its user.
//!
//! No limit of [`super::Limits`] shapes the generated code (fuel and the
//! deadline are checked by code that is always there; memory is limited at
//! run time), so no limit is part of the fingerprint.

use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KPCWASM\x02";
const HEADER: usize = 8 + 32 + 32 + 32;

/// Where compiled modules are kept, for one engine.
pub(super) struct Cache {
    dir: PathBuf,
    fingerprint: [u8; 32],
}

impl Cache {
    /// The cache under `cache_dir`, for modules compiled by `engine`.
    pub(super) fn new(cache_dir: &Path, engine: &wasmtime::Engine) -> Cache {
        Cache {
            dir: cache_dir.join(format!("policy-v2-wasmtime{}", super::WASMTIME_MAJOR)),
            fingerprint: fingerprint(engine),
        }
    }

    pub(super) fn path(&self, module: &blake3::Hash) -> PathBuf {
        self.dir.join(format!("{}.cwasm", module.to_hex()))
    }

    /// The compiled module for the module whose bytes hash to `module`, if
    /// the cache holds a sound entry for it from this very engine.
    pub(super) fn read(
        &self,
        engine: &wasmtime::Engine,
        module: &blake3::Hash,
    ) -> Option<wasmtime::Module> {
        let path = self.path(module);
        if !private(&path) {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        let body = self.check(&bytes, module)?;
        // SAFETY: `check` found an entry for exactly these module bytes, made
        // by an engine with this engine's versions and code-shaping
        // configuration, whole (its checksum matches), in a directory only
        // this user may write. Deserialising still trusts that keelson wrote
        // it: the cache directory is trusted (see the module docs).
        unsafe { wasmtime::Module::deserialize(engine, body) }.ok()
    }

    /// The body of `entry` when its header names `module` and this engine
    /// and its checksum holds; `None` for anything else.
    fn check<'e>(&self, entry: &'e [u8], module: &blake3::Hash) -> Option<&'e [u8]> {
        if entry.len() < HEADER {
            return None;
        }
        let (header, body) = entry.split_at(HEADER);
        let (magic, rest) = header.split_at(8);
        let (hash, rest) = rest.split_at(32);
        let (engine, sum) = rest.split_at(32);
        if magic != MAGIC || hash != module.as_bytes() || engine != self.fingerprint {
            return None;
        }
        (checksum(&header[..HEADER - 32], body).as_bytes() == sum).then_some(body)
    }

    /// Records `compiled` for `module`. A cache that cannot be written only
    /// costs time, so failures are ignored.
    pub(super) fn write(&self, module: &blake3::Hash, compiled: &wasmtime::Module) {
        let Ok(body) = compiled.serialize() else {
            return;
        };
        let _ = self.write_entry(module, &body);
    }

    fn write_entry(&self, module: &blake3::Hash, body: &[u8]) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let mut entry = Vec::with_capacity(HEADER + body.len());
        entry.extend_from_slice(MAGIC);
        entry.extend_from_slice(module.as_bytes());
        entry.extend_from_slice(&self.fingerprint);
        let sum = checksum(&entry, body);
        entry.extend_from_slice(sum.as_bytes());
        entry.extend_from_slice(body);
        let path = self.path(module);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&tmp, &entry)?;
        // Rename, so a reader never sees half an entry.
        std::fs::rename(&tmp, &path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    #[cfg(test)]
    pub(super) fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

fn checksum(header: &[u8], body: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(header);
    h.update(body);
    h.finalize()
}

/// What an engine's compiled code depends on, hashed.
fn fingerprint(engine: &wasmtime::Engine) -> [u8; 32] {
    use std::hash::Hash;
    let mut feed = Feed(blake3::Hasher::new());
    feed.0.update(b"keelson policy cache\0");
    feed.0.update(env!("CARGO_PKG_VERSION").as_bytes());
    feed.0.update(b"\0wasmtime ");
    feed.0.update(super::WASMTIME_MAJOR.as_bytes());
    feed.0.update(b"\0");
    // wasmtime's own answer to "can an artifact of that engine run in this
    // one": target triple, Cranelift's shared and ISA flags, tunables,
    // enabled WebAssembly features, and wasmtime's full version.
    engine.precompile_compatibility_hash().hash(&mut feed);
    *feed.0.finalize().as_bytes()
}

/// A `Hasher` that feeds blake3, so `Hash` impls can be fingerprinted.
struct Feed(blake3::Hasher);

impl std::hash::Hasher for Feed {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let b = self.0.finalize();
        u64::from_le_bytes(b.as_bytes()[..8].try_into().expect("8 bytes"))
    }
}

/// Whether an entry is a file only its owner may write (always true off Unix).
fn private(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let writable_by_others =
            |p: &Path| std::fs::metadata(p).map_or(true, |m| m.permissions().mode() & 0o022 != 0);
        let dir = path.parent().expect("an entry has a directory");
        !writable_by_others(path) && !writable_by_others(dir)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        true
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    // A stale file of a crashed run may have any mode: start afresh.
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)
}
