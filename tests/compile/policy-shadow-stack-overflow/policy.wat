;; What rustc makes of unbounded recursion over an array on the stack: the
;; stack comes first in memory (`--stack-first`): `__stack_pointer` (the
;; first global) starts at its top, and `__data_end` is exported above it.
;; Each call takes a 256-byte frame and fills it with `memory.fill`, as rustc
;; does for `[x; 256]`, unchecked, until the pointer wraps below 0 and the
;; fill traps: a bulk access, so the trap carries no address.
(module
  (memory (export "memory") 2)
  (global $__stack_pointer (mut i32) (i32.const 65536))
  (global $__data_end i32 (i32.const 66000))
  (global $bump (mut i32) (i32.const 70000))
  (export "__data_end" (global $__data_end))
  (func (export "keelson_abi_version") (result i32) (i32.const 1))
  (func (export "keelson_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (local.get $p))
  (func $down (param $n i32)
    (local $frame i32)
    (global.set $__stack_pointer
      (local.tee $frame (i32.sub (global.get $__stack_pointer) (i32.const 256))))
    (memory.fill (local.get $frame) (i32.or (local.get $n) (i32.const 1)) (i32.const 256))
    (call $down (i32.add (local.get $n) (i32.const 1)))
    (global.set $__stack_pointer (i32.add (local.get $frame) (i32.const 256))))
  (func (export "filter") (param $ptr i32) (param $len i32) (result i64)
    (call $down (i32.const 0))
    (i64.const 0))
)
