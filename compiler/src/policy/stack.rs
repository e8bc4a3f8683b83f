//! Telling a stack overflow in linear memory from other out-of-bounds traps.
//!
//! WebAssembly has no stack pointer of its own for data: LLVM keeps one in a
//! mutable global (`__stack_pointer`) and puts Rust's frames in linear
//! memory. rustc links `wasm32-unknown-unknown` with `--stack-first`: the
//! stack takes the start of memory, `[0, top)` (`top` is 1 MiB unless linked
//! with `-zstack-size`), the data follows it, and functions subtract their
//! frame size from the pointer, unchecked. When the stack runs out the
//! pointer goes below 0 and wraps to just under 4 GiB, and the first access
//! to the new frame is out of bounds. wasmtime reports only "out of bounds
//! memory access", and the global is neither exported nor named (policies
//! are stripped), so it cannot be read after the trap. Two kinds of evidence
//! can:
//!
//! 1. **Where it faulted.** A plain load or store that faults is caught by
//!    wasmtime's guard pages, and the error carries the address as context
//!    ("memory fault at wasm address 0x… in linear memory of size 0x…";
//!    the `WasmFault` type is not public in wasmtime 48, so the message is
//!    read). An address within 16 MiB below 4 GiB (or up to 16 MiB past
//!    it, for an access's constant offset) is a pointer that went a little
//!    below 0: a policy's memory never reaches there (its limit is far
//!    lower), a stray pointer rarely lands there, and a stack that wrapped
//!    always does (16 MiB is more than any frame).
//! 2. **What the stack left behind.** A bulk access (`memory.fill`,
//!    `memory.copy`: how rustc fills and copies arrays on the stack) is
//!    checked by the runtime and traps without an address. But a stack that
//!    ran out has been used to its bottom: the deepest frames were written
//!    within the lowest bytes of memory, which nothing else writes when the
//!    stack comes first. So when the module's layout is Rust's — its first
//!    global is a mutable `i32` set to a constant `top` (the stack
//!    pointer's start) and its exported `__data_end` is at or above `top`
//!    (the stack is first) — an out-of-bounds trap with a non-zero byte in
//!    the lowest sixteenth of the stack (at most 64 KiB) is taken for an
//!    overflow. A normal run never comes within a sixteenth of the bottom of
//!    its stack; a frame bigger than that sixteenth could miss it (then the
//!    trap stays "out of bounds").
//!
//! Anything else stays a plain "out of bounds memory access".

/// The start of a module's stack pointer, when its layout is Rust's stack
/// first (see the module docs). `None` for any other layout, or bytes that
/// are not a binary module (text, or anything malformed: this never panics).
pub(super) fn stack_top(wasm: &[u8]) -> Option<u32> {
    let mut r = Reader { bytes: wasm, at: 0 };
    if r.take(8)? != b"\0asm\x01\0\0\0" {
        return None;
    }
    let mut first_global = None;
    let mut globals: Vec<i64> = Vec::new();
    let mut data_end = None;
    while r.at < wasm.len() {
        let id = r.byte()?;
        let size = r.u32()? as usize;
        let mut s = Reader {
            bytes: r.take(size)?,
            at: 0,
        };
        match id {
            // Imports: an imported global would shift the indices; policies
            // import one function.
            2 => {
                for _ in 0..s.u32()? {
                    s.name()?;
                    s.name()?;
                    match s.byte()? {
                        0 => {
                            s.u32()?;
                        }
                        _ => return None,
                    }
                }
            }
            6 => {
                for i in 0..s.u32()? {
                    let ty = s.byte()?;
                    let mutable = s.byte()? == 1;
                    // A constant: `i32.const N end`; anything else ends the scan.
                    let value = match (s.byte()?, ty) {
                        (0x41, 0x7f) => {
                            let v = s.i32()?;
                            (s.byte()? == 0x0b).then_some(i64::from(v))
                        }
                        _ => None,
                    };
                    if i == 0 {
                        first_global = Some((ty == 0x7f && mutable, value));
                    }
                    let Some(v) = value else { break };
                    globals.push(v);
                }
            }
            7 => {
                for _ in 0..s.u32()? {
                    let name = s.name()?;
                    let kind = s.byte()?;
                    let index = s.u32()?;
                    if name == b"__data_end" && kind == 3 {
                        data_end = Some(index as usize);
                    }
                }
            }
            _ => {}
        }
    }
    let (true, Some(top)) = first_global? else {
        return None;
    };
    let end = *globals.get(data_end?)?;
    if 0 < top && top <= end {
        u32::try_from(top).ok()
    } else {
        None
    }
}

/// Evidence 1: the fault address wasmtime attached, when it is just below 0.
pub(super) fn wrapped_address(e: &wasmtime::Error) -> Option<u64> {
    const WINDOW: u64 = 16 << 20;
    let at = e.chain().find_map(|cause| {
        let text = cause.to_string();
        let hex = text.strip_prefix("memory fault at wasm address 0x")?;
        u64::from_str_radix(hex.split(' ').next()?, 16).ok()
    })?;
    ((1u64 << 32) - WINDOW..(1u64 << 32) + WINDOW)
        .contains(&at)
        .then_some(at)
}

/// Evidence 2: whether the bottom of a stack that starts at `top` was
/// written, in `memory` after the trap.
pub(super) fn bottom_used(memory: &[u8], top: u32) -> bool {
    let bottom = (top as usize / 16).clamp(1, 64 << 10);
    memory
        .get(..bottom)
        .is_some_and(|b| b.iter().any(|&x| x != 0))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let b = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(b)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let mut v: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return u32::try_from(v).ok();
            }
        }
        None
    }

    fn i32(&mut self) -> Option<i32> {
        let mut v: i64 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.byte()?;
            v |= i64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b & 0x40 != 0 {
                    v |= -1i64 << (shift + 7);
                }
                return i32::try_from(v).ok();
            }
        }
        None
    }

    fn name(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with the given sections (id, body).
    fn module(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        for (id, body) in sections {
            m.push(*id);
            m.push(body.len() as u8);
            m.extend_from_slice(body);
        }
        m
    }

    /// Globals: a mutable i32 at 1 MiB, then `__data_end`'s value; the
    /// export of `__data_end` (global 1).
    fn rust_like(data_end: &[u8]) -> Vec<u8> {
        let mut globals = vec![2, 0x7f, 1, 0x41, 0x80, 0x80, 0xc0, 0x00, 0x0b];
        globals.extend([0x7f, 0, 0x41]);
        globals.extend_from_slice(data_end);
        globals.push(0x0b);
        let mut exports = vec![1, 10];
        exports.extend_from_slice(b"__data_end");
        exports.extend([3, 1]);
        let mut imports = vec![1, 7];
        imports.extend_from_slice(b"keelson");
        imports.push(3);
        imports.extend_from_slice(b"log");
        imports.extend([0, 0]);
        module(&[(2, imports), (6, globals), (7, exports)])
    }

    #[test]
    fn rusts_stack_first_layout_is_recognised() {
        // __data_end = 0x104000 (signed LEB 80 80 c1 00), above the stack.
        let above = [0x80, 0x80, 0xc1, 0x00];
        assert_eq!(stack_top(&rust_like(&above)), Some(1 << 20));
        // __data_end = 0x1000 (80 20): data first, then the stack.
        assert_eq!(stack_top(&rust_like(&[0x80, 0x20])), None);
        // __data_end = -64 (40): not a layout.
        assert_eq!(stack_top(&rust_like(&[0x40])), None);
        // Text, truncations and garbage are simply not recognised.
        let whole = rust_like(&above);
        for n in 0..whole.len() {
            assert_eq!(stack_top(&whole[..n]), None, "{n}");
        }
        assert_eq!(stack_top(b"(module)"), None);
        assert_eq!(stack_top(b"\0asm\x01\0\0\0\x06\xff\xff\xff\xff\x0f"), None);
    }

    #[test]
    fn the_bottom_of_the_stack_is_its_lowest_sixteenth() {
        let mut memory = vec![0u8; 1 << 20];
        assert!(!bottom_used(&memory, 1 << 20));
        memory[(64 << 10) - 1] = 1;
        assert!(bottom_used(&memory, 1 << 20));
        assert!(!bottom_used(&memory, 64 << 10));
        memory[100] = 7;
        assert!(bottom_used(&memory, 64 << 10));
    }
}
