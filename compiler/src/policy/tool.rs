//! `keelson policy hash|test|new`: the policy author's loop, on the same host
//! that compiles use.

use std::path::{Path, PathBuf};

use crate::error::Error;

use super::{Host, Limits, abi};

/// The pin of a module file: `blake3:<hex>`. Refuses a file that is
/// neither a WebAssembly module (`\0asm`) nor WebAssembly text (`.wat`).
pub(crate) fn hash_file(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let wat = path.extension().is_some_and(|x| x == "wat");
    if !bytes.starts_with(b"\0asm") && !wat {
        return Err(Error::refused(
            format!(
                "`{}` is not a WebAssembly module (it does not start with `\\0asm`)",
                path.display()
            ),
            "hash the built module, e.g. `target/wasm32-unknown-unknown/release/NAME.wasm` after `cargo build --release` in the policy's crate",
        ));
    }
    Ok(format!("blake3:{}", crate::lock::hash(&bytes)))
}

/// The result of one call by `keelson policy test`.
#[derive(Debug)]
pub struct Tested {
    pub entry: String,
    /// The output, pretty-printed, when the call returned valid output.
    pub output: Result<String, String>,
    pub log: Vec<String>,
    pub fuel: Option<u64>,
    pub hash: String,
}

/// Loads `module` (a `.wasm` file, or `.wat` text) and calls it once with the
/// JSON in `input`. The entry point is the input's `entry` field, else the
/// one the module exports. A module that cannot be loaded is an `Err`; a call
/// that fails is in [`Tested::output`].
pub fn test(module: &Path, input: &Path, limits: Limits) -> Result<Tested, Error> {
    let bytes = std::fs::read(module).map_err(|e| Error::io("reading", module, e))?;
    let text = std::fs::read_to_string(input).map_err(|e| Error::io("reading", input, e))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::refused(
            format!("`{}` is not JSON: {e}", input.display()),
            "write the input as the ABI describes (book: Policy ABI)",
        )
    })?;
    let host = Host::new(limits, None).map_err(|e| Error::refused(e, "please report this"))?;
    let label = module.display().to_string();
    let loaded = host.load(&label, &bytes).map_err(|why| {
        Error::refused(
            format!("`{label}` cannot be used as a policy: {why}"),
            "build it with the keelson-policy SDK, or fix it against the ABI spec",
        )
    })?;
    let entry = match value.get("entry").and_then(|e| e.as_str()) {
        Some(e @ ("filter" | "promote")) => e.to_string(),
        Some(other) => {
            return Err(Error::refused(
                format!("the input's `entry` is `{other}`"),
                "set `entry` to `filter` or `promote`",
            ));
        }
        None if loaded.exports_filter && !loaded.exports_promote => "filter".into(),
        None if loaded.exports_promote && !loaded.exports_filter => "promote".into(),
        None => {
            return Err(Error::refused(
                "the module exports both `filter` and `promote`, and the input has no `entry`",
                "add `\"entry\": \"filter\"` or `\"entry\": \"promote\"` to the input",
            ));
        }
    };
    let exported = if entry == "filter" {
        loaded.exports_filter
    } else {
        loaded.exports_promote
    };
    if !exported {
        return Err(Error::refused(
            format!("`{label}` does not export `{entry}`"),
            "call the entry point it exports",
        ));
    }
    let (output, log, fuel) = match host.call(&loaded, &entry, text.as_bytes()) {
        Ok(called) => {
            let checked = if entry == "filter" {
                let candidates = value
                    .get("candidates")
                    .and_then(|c| c.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.get("tag").and_then(|t| t.as_str()));
                abi::read_verdicts(&called.output, candidates).map(|_| ())
            } else {
                abi::read_promotion(&called.output).map(|_| ())
            };
            let output = match checked {
                Ok(()) => Ok(pretty(&called.output)),
                Err(abi::Failure::Reported(msg)) => Err(format!("it reported an error: {msg}")),
                Err(abi::Failure::Broken(why)) => Err(why),
            };
            (output, called.log, Some(called.fuel))
        }
        Err(e) => {
            let message = match e.help {
                Some(help) => format!("{}\n  help: {help}", e.message),
                None => e.message,
            };
            (Err(message), e.log, None)
        }
    };
    Ok(Tested {
        entry,
        output,
        log,
        fuel,
        hash: loaded.hash,
    })
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_string())
}

/// The SDK's files, written into a new policy crate's `vendor/`.
const SDK: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../policies/keelson-policy/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../policies/keelson-policy/src/lib.rs"),
    ),
    (
        "src/time.rs",
        include_str!("../../../policies/keelson-policy/src/time.rs"),
    ),
    (
        "src/version.rs",
        include_str!("../../../policies/keelson-policy/src/version.rs"),
    ),
];

/// The scaffold's files, with `{{name}}` and `{{crate}}` placeholders.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../policies/template/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../policies/template/src/lib.rs"),
    ),
    (
        "README.md",
        include_str!("../../../policies/template/README.md"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../../policies/template/.cargo/config.toml"),
    ),
    (
        "input.json",
        include_str!("../../../policies/template/input.json"),
    ),
    (
        "input-gate.json",
        include_str!("../../../policies/template/input-gate.json"),
    ),
    (
        "clippy.toml",
        include_str!("../../../policies/template/clippy.toml"),
    ),
];

/// Writes a new policy crate named `name` into `dir/name`, with the SDK
/// vendored so it builds as is. Returns the files written.
pub(crate) fn scaffold(dir: &Path, name: &str) -> Result<(PathBuf, Vec<PathBuf>), Error> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-');
    if !valid {
        return Err(Error::refused(
            format!("`{name}` is not a policy name"),
            "use lowercase letters, digits and `-`, starting with a letter, such as `team-rules`",
        ));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(Error::refused(
            format!("`{}` already exists", root.display()),
            "choose another name or directory; keelson never overwrites files here",
        ));
    }
    let krate = name.replace('-', "_");
    let mut written = Vec::new();
    let files = TEMPLATE
        .iter()
        .map(|(p, t)| {
            (
                PathBuf::from(p),
                t.replace("{{name}}", name).replace("{{crate}}", &krate),
            )
        })
        .chain(
            SDK.iter()
                .map(|(p, t)| (Path::new("vendor/keelson-policy").join(p), (*t).to_string())),
        );
    for (rel, text) in files {
        let path = root.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::io("writing", &path, e))?;
        written.push(rel);
    }
    Ok((root, written))
}
