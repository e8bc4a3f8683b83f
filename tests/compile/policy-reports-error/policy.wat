;; reports an error about its params
(module
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (func (export "keelson_abi_version") (result i32) (i32.const 1))
  (func (export "keelson_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (local.get $p))
  (data (i32.const 16) "\7b\22\65\72\72\6f\72\22\3a\22\70\61\72\61\6d\73\3a\20\60\68\6f\75\72\73\60\20\69\73\20\72\65\71\75\69\72\65\64\22\7d")
  (func (export "filter") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 39)))
)
