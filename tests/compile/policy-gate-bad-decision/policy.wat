;; a gate that answers neither promote nor hold
(module
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (func (export "keelson_abi_version") (result i32) (i32.const 1))
  (func (export "keelson_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (local.get $p))
  (data (i32.const 16) "\7b\22\64\65\63\69\73\69\6f\6e\22\3a\22\6c\61\74\65\72\22\2c\22\72\65\61\73\6f\6e\22\3a\22\73\6f\6f\6e\22\7d")
  (func (export "promote") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 36)))
)
