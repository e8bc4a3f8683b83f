;; a filter-only module used as a gate
(module
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (func (export "keelson_abi_version") (result i32) (i32.const 1))
  (func (export "keelson_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (local.get $p))
  (data (i32.const 16) "\7b\22\76\65\72\64\69\63\74\73\22\3a\5b\7b\22\74\61\67\22\3a\22\31\2e\32\2e\30\22\2c\22\64\65\63\69\73\69\6f\6e\22\3a\22\61\6c\6c\6f\77\22\7d\5d\7d")
  (func (export "filter") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 49)))
)
