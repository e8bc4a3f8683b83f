;; What rustc makes of unbounded recursion: each call takes a frame from a
;; stack in linear memory (`__stack_pointer` starts at the top of a stack at
;; the start of memory, as `--stack-first` lays it out), unchecked, until the
;; pointer wraps below 0 and a store faults just under 4 GiB.
(module
  (memory (export "memory") 2)
  (global $sp (mut i32) (i32.const 65536))
  (global $bump (mut i32) (i32.const 70000))
  (func (export "keelson_abi_version") (result i32) (i32.const 1))
  (func (export "keelson_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (local.get $p))
  (func $down (param $n i32)
    (local $frame i32)
    (global.set $sp (local.tee $frame (i32.sub (global.get $sp) (i32.const 64))))
    (i32.store offset=8 (local.get $frame) (local.get $n))
    (call $down (i32.add (local.get $n) (i32.const 1)))
    (global.set $sp (i32.add (local.get $frame) (i32.const 64))))
  (func (export "filter") (param $ptr i32) (param $len i32) (result i64)
    (call $down (i32.const 0))
    (i64.const 0))
)
