;; answers text that is not JSON
(module
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (func (export "keelson_abi_version") (result i32) (i32.const 1))
  (func (export "keelson_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $len)))
    (local.get $p))
  (data (i32.const 16) "\74\68\69\73\20\69\73\20\6e\6f\74\20\6a\73\6f\6e")
  (func (export "filter") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 16)))
)
