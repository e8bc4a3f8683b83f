//! Helpers for `scripts/build-policies.sh`, native only:
//!
//! - `policy-tools hash FILE…` prints `<blake3 hex>  <file name>` per file
//!   (the format of `HASHES`, and of `b3sum`);
//! - `policy-tools finish IN OUT` copies the module `IN` to `OUT` without
//!   the exports `__data_end` and `__heap_base`, the two globals rustc's
//!   linker exports from every `wasm32-unknown-unknown` cdylib, which the
//!   ABI does not name (the host ignores them; this keeps the standard
//!   modules' surface exactly the ABI's). Every other byte is kept.
//! - `policy-tools surface FILE…` checks that each policy module has the ABI
//!   v1 surface (book/src/policy-abi.md): it imports only
//!   `keelson.log(i32, i32)`, and exports exactly `memory`,
//!   `keelson_abi_version`, `keelson_alloc` and `filter` and/or `promote`,
//!   with the ABI's types. It prints the entry points each exports.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, input, output] = args.as_slice()
        && command == "finish"
    {
        return match finish(input, output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("policy-tools: cannot finish {input}: {why}");
                ExitCode::FAILURE
            }
        };
    }
    let (command, files) = match args.split_first() {
        Some((c, f)) if !f.is_empty() => (c.as_str(), f),
        _ => return usage(),
    };
    let mut failed = false;
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("policy-tools: cannot read {file}: {e}");
                failed = true;
                continue;
            }
        };
        let name = std::path::Path::new(file)
            .file_name()
            .map_or_else(|| file.clone(), |n| n.to_string_lossy().into_owned());
        match command {
            "hash" => println!("{}  {name}", blake3::hash(&bytes).to_hex()),
            "surface" => match surface(&bytes) {
                Ok(entries) => println!("{name}: exports {}", entries.join(" and ")),
                Err(why) => {
                    eprintln!("policy-tools: {file} breaks the policy ABI: {why}");
                    failed = true;
                }
            },
            _ => return usage(),
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: policy-tools hash FILE…\n       policy-tools surface FILE…\n       policy-tools finish IN OUT"
    );
    ExitCode::from(2)
}

/// The exports `finish` removes.
const LINKER_EXPORTS: [&str; 2] = ["__data_end", "__heap_base"];

fn finish(input: &str, output: &str) -> Result<(), String> {
    let wasm = std::fs::read(input).map_err(|e| e.to_string())?;
    let mut r = Reader { b: &wasm, at: 0 };
    let mut out = r.bytes(8)?.to_vec();
    if out != b"\0asm\x01\0\0\0" {
        return Err("it is not a WebAssembly core module (version 1)".into());
    }
    while r.at < wasm.len() {
        let start = r.at;
        let id = r.byte()?;
        let size = r.u32()? as usize;
        let body = r.bytes(size)?;
        if id != 7 {
            out.extend_from_slice(&wasm[start..r.at]);
            continue;
        }
        let mut s = Reader { b: body, at: 0 };
        let mut kept = Vec::new();
        let mut count = 0u32;
        for _ in 0..s.u32()? {
            let at = s.at;
            let name = s.name()?;
            let kind = s.byte()?;
            s.u32()?;
            if kind == 3 && LINKER_EXPORTS.contains(&name.as_str()) {
                continue;
            }
            kept.extend_from_slice(&body[at..s.at]);
            count += 1;
        }
        let mut section = Vec::new();
        leb(&mut section, count);
        section.extend_from_slice(&kept);
        out.push(7);
        leb(&mut out, section.len() as u32);
        out.extend_from_slice(&section);
    }
    std::fs::write(output, out).map_err(|e| format!("cannot write {output}: {e}"))
}

/// Unsigned LEB128, shortest form.
fn leb(out: &mut Vec<u8>, mut n: u32) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

const I32: u8 = 0x7f;
const I64: u8 = 0x7e;

/// A function type: parameter and result value types.
type FuncType = (Vec<u8>, Vec<u8>);

/// Checks the imports and exports; returns the entry points exported.
fn surface(wasm: &[u8]) -> Result<Vec<&'static str>, String> {
    let mut r = Reader { b: wasm, at: 0 };
    if r.bytes(8)? != b"\0asm\x01\0\0\0" {
        return Err("it is not a WebAssembly core module (version 1)".into());
    }
    let mut types: Vec<FuncType> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new(); // type index of every function, imports first
    let mut exports: Vec<(String, u8, u32)> = Vec::new();
    while r.at < wasm.len() {
        let id = r.byte()?;
        let size = r.u32()? as usize;
        let mut s = Reader {
            b: r.bytes(size)?,
            at: 0,
        };
        match id {
            1 => {
                for _ in 0..s.u32()? {
                    if s.byte()? != 0x60 {
                        return Err("its type section has a non-function type".into());
                    }
                    let n = s.u32()? as usize;
                    let params = s.bytes(n)?.to_vec();
                    let n = s.u32()? as usize;
                    types.push((params, s.bytes(n)?.to_vec()));
                }
            }
            2 => {
                for _ in 0..s.u32()? {
                    let (module, name) = (s.name()?, s.name()?);
                    let kind = s.byte()?;
                    let ok = module == "keelson" && name == "log" && kind == 0;
                    if kind == 0 {
                        let ty = s.u32()?;
                        let sig = types.get(ty as usize).ok_or("bad type index")?;
                        if ok && *sig != (vec![I32, I32], vec![]) {
                            return Err("it imports `keelson.log` with the wrong type".into());
                        }
                        funcs.push(ty);
                    }
                    if !ok {
                        return Err(format!(
                            "it imports `{module}.{name}`; a policy may import only `keelson.log`"
                        ));
                    }
                }
            }
            3 => {
                for _ in 0..s.u32()? {
                    funcs.push(s.u32()?);
                }
            }
            7 => {
                for _ in 0..s.u32()? {
                    let name = s.name()?;
                    exports.push((name, s.byte()?, s.u32()?));
                }
            }
            _ => {}
        }
    }
    let mut entries = Vec::new();
    let mut seen = Vec::new();
    for (name, kind, index) in &exports {
        let want: Option<FuncType> = match name.as_str() {
            "memory" => {
                if *kind != 2 {
                    return Err("its `memory` export is not a memory".into());
                }
                None
            }
            "keelson_abi_version" => Some((vec![], vec![I32])),
            "keelson_alloc" => Some((vec![I32], vec![I32])),
            "filter" | "promote" => Some((vec![I32, I32], vec![I64])),
            other => return Err(format!("it exports `{other}`, which the ABI does not name")),
        };
        if let Some(want) = want {
            let ty = funcs.get(*index as usize).ok_or("bad function index")?;
            if *kind != 0 || types.get(*ty as usize) != Some(&want) {
                return Err(format!("its export `{name}` does not have the ABI's type"));
            }
        }
        match name.as_str() {
            "filter" => entries.push("filter"),
            "promote" => entries.push("promote"),
            _ => {}
        }
        seen.push(name.as_str());
    }
    for required in ["memory", "keelson_abi_version", "keelson_alloc"] {
        if !seen.contains(&required) {
            return Err(format!("it does not export `{required}`"));
        }
    }
    if entries.is_empty() {
        return Err("it exports neither `filter` nor `promote`".into());
    }
    Ok(entries)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or("the module ends early")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }

    /// Unsigned LEB128.
    fn u32(&mut self) -> Result<u32, String> {
        let mut n: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(n).map_err(|_| "a number is too large".into());
            }
        }
        Err("a number is too long".into())
    }

    fn name(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.bytes(n)?.to_vec()).map_err(|_| "a name is not UTF-8".into())
    }
}
